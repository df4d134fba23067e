import helios


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(helios) if not name.startswith("_")}
    # submodules appear as attributes once imported; they are not part of the API list
    modules = {name for name in public if type(getattr(helios, name)).__name__ == "module"}
    assert set(helios.__all__) - {"__version__"} == public - modules
    assert sorted(helios.__all__) == helios.__all__


def test_every_error_derives_from_helios_error() -> None:
    for name in helios.__all__:
        value = getattr(helios, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, helios.HeliosError), name
