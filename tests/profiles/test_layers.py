"""Profile layers (harness/profiles/registry.py): built-in -> ./device_profiles -> HARNESS_PROFILES ->
--profiles-dir, later wins by name; extends; where each profile came from."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from harness.errors import ProfileError, UsageError
from harness.profiles import registry
from harness.profiles.schema import load_profile

REPO = Path(__file__).resolve().parents[2]
BUILTIN_CPU = registry.BUILTIN_DIR.resolve() / "cpu.toml"


def _write(folder: Path, name: str, body: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(body)
    return path


def _layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A profile 'mine' in every user layer, each saying which layer it is in its description."""
    folders = {"local": tmp_path / "device_profiles", "env1": tmp_path / "env1", "env2": tmp_path / "env2",
               "flag": tmp_path / "flag"}
    for label, folder in folders.items():
        _write(folder, "mine", f'description = "{label}"\n')
    monkeypatch.setenv(registry.ENV_VAR, f"{folders['env1']}{os.pathsep}{folders['env2']}")
    return folders


def test_later_layers_replace_earlier_ones_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _layered(tmp_path, monkeypatch)
    mine = registry.load_all([folders["flag"]], cwd=tmp_path)["mine"]
    assert (mine.description, mine.origin, mine.source) == ("flag", "--profiles-dir", folders["flag"] / "mine.toml")
    mine = registry.load_all(cwd=tmp_path)["mine"]
    assert (mine.description, mine.origin) == ("env2", "HARNESS_PROFILES")
    monkeypatch.delenv(registry.ENV_VAR)
    mine = registry.load_all(cwd=tmp_path)["mine"]
    assert (mine.description, mine.origin) == ("local", "./device_profiles")


def test_user_layers_add_to_the_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _layered(tmp_path, monkeypatch)
    profiles = registry.load_all(cwd=tmp_path)
    builtins = {p.stem for p in registry.BUILTIN_DIR.glob("*.toml")}
    assert set(profiles) == builtins | {"mine"}
    assert {profiles[name].origin for name in builtins} == {"built-in"}
    assert list(profiles)[0] == "cpu"


def test_a_user_cpu_replaces_the_builtin_and_keeps_the_order(tmp_path: Path) -> None:
    _write(tmp_path / "flag", "cpu", 'description = "my reference"\n')
    profiles = registry.load_all([tmp_path / "flag"], cwd=tmp_path)
    assert list(profiles)[0] == "cpu"
    assert (profiles["cpu"].description, profiles["cpu"].origin) == ("my reference", "--profiles-dir")


def test_harness_profiles_lists_two_folders_and_skips_empty_entries(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "a", "one", 'description = "a"\n')
    _write(tmp_path / "a", "both", 'description = "a"\n')
    _write(tmp_path / "b", "two", 'description = "b"\n')
    _write(tmp_path / "b", "both", 'description = "b"\n')
    monkeypatch.setenv(registry.ENV_VAR, os.pathsep.join(["", str(tmp_path / "a"), str(tmp_path / "b"), ""]))
    profiles = registry.load_all(builtin=False, cwd=tmp_path)
    assert sorted(profiles) == ["both", "one", "two"]
    assert profiles["both"].description == "b"
    assert {p.origin for p in profiles.values()} == {"HARNESS_PROFILES"}


def test_relative_folders_are_taken_from_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "rel-env", "e")
    _write(tmp_path / "rel-flag", "f")
    monkeypatch.setenv(registry.ENV_VAR, "rel-env")
    assert sorted(registry.load_all([Path("rel-flag")], builtin=False, cwd=tmp_path)) == ["e", "f"]


def test_repo_device_profiles_is_the_builtin_layer_not_a_second_one() -> None:
    profiles = registry.load_all(cwd=REPO)
    assert {p.origin for p in profiles.values()} == {"built-in"}


def test_builtin_false_drops_the_shipped_profiles_also_from_the_repo_root(tmp_path: Path) -> None:
    _write(tmp_path / "flag", "only")
    assert list(registry.load_all([tmp_path / "flag"], builtin=False, cwd=REPO)) == ["only"]
    with pytest.raises(UsageError, match="no device profiles to load"):
        registry.load_all(builtin=False, cwd=REPO)


def test_an_empty_local_folder_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "device_profiles").mkdir()
    assert {p.origin for p in registry.load_all(cwd=tmp_path).values()} == {"built-in"}


@pytest.mark.parametrize("where", ["env", "flag"])
def test_a_missing_folder_is_one_line_naming_it_and_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               where: str) -> None:
    if where == "env":
        monkeypatch.setenv(registry.ENV_VAR, f"{tmp_path}{os.pathsep}gone")
        expected = "profile folder gone (from HARNESS_PROFILES) not found"
    else:
        expected = "profile folder gone (from --profiles-dir) not found"
    with pytest.raises(UsageError) as info:
        registry.load_all([Path("gone")] if where == "flag" else [], cwd=tmp_path)
    line = info.value.one_line()
    assert line.startswith(expected) and "\n" not in line
    assert ("unset HARNESS_PROFILES" in line) == (where == "env")


def test_a_named_folder_without_profiles_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path))
    with pytest.raises(UsageError, match=r"no \*.toml profiles in .* \(from HARNESS_PROFILES\)"):
        registry.load_all(cwd=tmp_path)


# --- extends -----------------------------------------------------------------------------------------------


def test_a_child_changes_one_field_and_inherits_the_rest(tmp_path: Path) -> None:
    _write(tmp_path / "u", "one-thread", 'extends = "cpu"\n[session]\nintra_op_threads = 1\n')
    profiles = registry.load_all([tmp_path / "u"], cwd=tmp_path)
    child, parent = profiles["one-thread"], profiles["cpu"]
    assert child.session == {**parent.session, "intra_op_threads": 1}
    assert (child.extends, child.bases, child.origin) == ("cpu", (BUILTIN_CPU,), "--profiles-dir")
    different = {f.name for f in fields(child) if getattr(child, f.name) != getattr(parent, f.name)}
    assert different == {"name", "source", "session", "origin", "extends", "bases"}


def test_tables_merge_and_arrays_are_replaced(tmp_path: Path) -> None:
    _write(tmp_path, "base", 'description = "base"\n[ep]\nname = "CPUExecutionProvider"\n'
           '[session.config]\n"session.disable_prepacking" = "1"\n"session.set_denormal_as_zero" = "0"\n'
           '[[known_failures]]\ncase = "x"\nreason = "r1"\n[[known_failures]]\ncase = "y"\nreason = "r2"\n')
    _write(tmp_path, "child", 'extends = "base"\n[session.config]\n"session.set_denormal_as_zero" = "1"\n'
           '[[known_failures]]\ncase = "z"\nreason = "r3"\n')
    child = registry.load_all([tmp_path], builtin=False, cwd=tmp_path)["child"]
    assert child.session["config"] == {"session.disable_prepacking": "1", "session.set_denormal_as_zero": "1"}
    assert [k.case for k in child.known_failures] == ["z"]
    assert (child.name, child.description) == ("child", "base")


def test_extends_chains(tmp_path: Path) -> None:
    base = _write(tmp_path, "a", 'timeout_s = 5\n[session]\ngraph_optimization = "basic"\n')
    middle = _write(tmp_path, "b", 'extends = "a"\n[session]\nintra_op_threads = 2\n')
    _write(tmp_path, "c", 'extends = "b"\ntimeout_s = 7\n')
    c = registry.load_all([tmp_path], builtin=False, cwd=tmp_path)["c"]
    assert (c.timeout_s, c.session) == (7.0, {"graph_optimization": "basic", "intra_op_threads": 2})
    assert (c.extends, c.bases) == ("b", (middle, base))


def test_a_cycle_is_one_line(tmp_path: Path) -> None:
    _write(tmp_path, "a", 'extends = "b"\n')
    _write(tmp_path, "b", 'extends = "c"\n')
    _write(tmp_path, "c", 'extends = "a"\n')
    with pytest.raises(ProfileError, match=r"c.toml: extends 'a' closes a cycle: a -> b -> c -> a"):
        registry.load_all([tmp_path], builtin=False, cwd=tmp_path)


def test_an_unknown_parent_suggests_a_name(tmp_path: Path) -> None:
    _write(tmp_path, "mine", 'extends = "cpuu"\n')
    with pytest.raises(ProfileError) as info:
        registry.load_all([tmp_path], cwd=tmp_path)
    line = info.value.one_line()
    assert "mine.toml: extends unknown profile 'cpuu' (did you mean 'cpu'" in line
    assert "known profiles: " in line and " cpu, " in line and "\n" not in line


def test_extends_must_name_a_profile(tmp_path: Path) -> None:
    _write(tmp_path, "mine", "extends = 3\n")
    with pytest.raises(ProfileError, match="mine.toml: extends = 3 is not valid; expected the name of a profile"):
        registry.load_all([tmp_path], cwd=tmp_path)


def test_a_user_cpu_extends_the_builtin_cpu_it_replaces(tmp_path: Path) -> None:
    _write(tmp_path / "device_profiles", "cpu", 'extends = "cpu"\ntimeout_s = 9\n')
    cpu = registry.load_all(cwd=tmp_path)["cpu"]
    builtin = registry.load_all(cwd=REPO)["cpu"]
    assert (cpu.timeout_s, cpu.description, cpu.session) == (9.0, builtin.description, builtin.session)
    assert (cpu.origin, cpu.extends, cpu.bases) == ("./device_profiles", "cpu", (BUILTIN_CPU,))


def test_extending_its_own_name_needs_an_earlier_one(tmp_path: Path) -> None:
    _write(tmp_path, "solo", 'extends = "solo"\n')
    with pytest.raises(ProfileError, match="solo.toml: extends 'solo', its own name, but no earlier layer"):
        registry.load_all([tmp_path], cwd=tmp_path)


def test_others_extend_the_final_version_of_a_name(tmp_path: Path) -> None:
    _write(tmp_path / "env", "mine", 'extends = "cpu"\n')
    _write(tmp_path / "flag", "cpu", 'extends = "cpu"\ntimeout_s = 3\n')
    profiles = registry.load_all([tmp_path / "env", tmp_path / "flag"], cwd=tmp_path)
    assert profiles["mine"].timeout_s == 3.0
    assert profiles["mine"].bases == (tmp_path / "flag" / "cpu.toml", BUILTIN_CPU)


def test_the_merged_table_is_validated_and_blamed_on_the_child(tmp_path: Path) -> None:
    _write(tmp_path, "base", "[constraints]\ncpu_cores = 2\n")
    _write(tmp_path, "greedy", 'extends = "base"\n[session]\nintra_op_threads = 4\n')
    with pytest.raises(ProfileError, match="greedy.toml: session.intra_op_threads = 4 exceeds constraints.cpu_cores"):
        registry.load_all([tmp_path], builtin=False, cwd=tmp_path)
    _write(tmp_path, "greedy", 'extends = "base"\n[sesion]\n')
    with pytest.raises(ProfileError, match="greedy.toml: unknown key 'sesion'"):
        registry.load_all([tmp_path], builtin=False, cwd=tmp_path)


def test_a_replaced_profile_is_still_validated(tmp_path: Path) -> None:
    _write(tmp_path / "env", "mine", "[sesion]\n")
    _write(tmp_path / "flag", "mine")
    with pytest.raises(ProfileError, match=r"env.mine.toml: unknown key 'sesion'"):
        registry.load_all([tmp_path / "env", tmp_path / "flag"], cwd=tmp_path)


def test_a_file_alone_cannot_extend(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine", 'extends = "cpu"\n')
    with pytest.raises(ProfileError, match="mine.toml: extends = 'cpu' needs the profile it extends") as info:
        load_profile(path)
    assert "registry.load_all" in info.value.one_line()


# --- origin --------------------------------------------------------------------------------------------------


def test_origin_says_layer_file_and_parent(tmp_path: Path) -> None:
    child = _write(tmp_path, "mine", 'extends = "cpu"\n')
    profiles = registry.load_all([tmp_path], cwd=tmp_path)
    assert registry.origin(profiles["cpu"]) == f"built-in {BUILTIN_CPU}"
    assert registry.origin(profiles["mine"]) == f"--profiles-dir {child}, extends cpu ({BUILTIN_CPU})"
    assert registry.origin(load_profile(BUILTIN_CPU)) == str(BUILTIN_CPU)


def test_extending_an_int8_profile_with_an_element_rule_replaces_the_parents(tmp_path: Path) -> None:
    """The built-in int8 profiles say elementwise = false; a child giving rtol/atol turns the rule back on
    instead of failing as a clash between its keys and the parent's."""
    (tmp_path / "strict-int8.toml").write_text('name = "strict-int8"\nextends = "cpu-int8"\n'
                                               '[tolerance]\nrtol = 0.05\natol = 0.05\n')
    profile = registry.load_all([tmp_path])["strict-int8"]
    assert profile.transform == "int8-dynamic"
    everything = profile.tolerance.everything
    assert everything.rtol == 0.05 and everything.atol == 0.05 and everything.elementwise is not False
