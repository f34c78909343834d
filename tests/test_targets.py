"""Target presets: listing, lookup, host detection, and that TVM accepts every preset."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import assert_user_error, run_cli

from crosstune import targets
from crosstune.errors import UserError
from crosstune.targets import cuda, host


def test_targets_command_lists_every_preset():
    proc = run_cli("targets", check=0)
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "DEVICE", "TVM"]
    listed = {line.split()[0] for line in lines[2:]}
    assert {"host", "x86-avx2", "x86-avx512", "x86-64"} <= listed
    assert listed == set(targets.names())


def test_targets_command_does_not_import_tvm_or_torch():
    code = (
        "import sys; from crosstune.cli import main; rc = main(['targets']);"
        "print('LOADED', 'tvm' in sys.modules, sys.modules.get('torch') is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "LOADED False False"


def test_unknown_target_is_one_line_listing_known_names(model_dir):
    proc = run_cli("compile", model_dir / "conv.onnx", "--target", "rpi9")
    line = assert_user_error(proc, "unknown target 'rpi9'", "x86-avx512", "host")
    assert "x86-avx2" in line


@pytest.mark.parametrize("name", targets.names())
def test_every_preset_is_a_valid_tvm_target(name):
    if name == "cuda" and not cuda.local_gpus():
        with pytest.raises(UserError, match="no NVIDIA GPU here"):
            targets.get(name)
        return
    t = targets.get(name)
    tvm_target = t.tvm_target()
    assert tvm_target.kind.name == t.tvm["kind"]
    assert t.cc and t.logs
    if t.device == "cuda":
        assert str(tvm_target.attrs["arch"]) == t.tvm["arch"] and tvm_target.host is not None
        assert str(tvm_target.host.attrs["mtriple"]) == t.host["mtriple"]
    else:
        assert t.device == "cpu" and str(tvm_target.attrs["mcpu"]) == t.tvm["mcpu"]


def _cpuinfo(tmp_path, flags: str):
    p = tmp_path / "cpuinfo"
    p.write_text(textwrap.dedent(f"""\
        processor\t: 0
        model name\t: Test CPU
        flags\t\t: {flags}
        """))
    return str(p)


AVX2 = "fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt avx avx2 fma f16c bmi1 bmi2 movbe abm"


@pytest.mark.parametrize(
    "flags,expected",
    [
        (AVX2 + " avx512f avx512cd avx512bw avx512dq avx512vl", "x86-avx512"),
        (AVX2 + " avx512f", "x86-avx2"),  # AVX-512 foundation alone is not skylake-avx512
        (AVX2, "x86-avx2"),
        (AVX2.replace(" movbe", ""), "x86-64"),  # a hidden feature must not be assumed
        ("fpu sse sse2", "x86-64"),
    ],
)
def test_host_detection_levels(tmp_path, flags, expected, monkeypatch):
    monkeypatch.setattr(host.platform, "machine", lambda: "x86_64")
    cpu = host.detect(_cpuinfo(tmp_path, flags))
    assert cpu.model == "Test CPU"
    assert cpu.preset == expected


@pytest.mark.parametrize("preset,needed", host.LEVELS)
def test_detection_levels_match_what_llvm_enables(preset, needed):
    """A CPU that passes detection for a level must have every feature the level's code may use,
    or `host` would build packages that the load-time check (or the CPU) refuses."""
    assert set(targets.get(preset).cpu_flags()) == set(needed)


def test_host_on_non_x86_names_presets(monkeypatch):
    monkeypatch.setattr(host.platform, "machine", lambda: "aarch64")
    with pytest.raises(UserError, match="x86-64 CPUs only.*x86-avx2"):
        targets.get("host")


def test_host_resolves_to_this_machine():
    t = targets.get("host")
    cpu = host.detect()
    assert t.logs == cpu.preset  # host shares the detected preset's tuning logs
    assert t.tvm["mcpu"] == targets.get(cpu.preset).tvm["mcpu"]
    assert t.tvm["num-cores"] == cpu.cores >= 1


def test_machine_kind_from_cpuinfo(tmp_path, monkeypatch):
    """Tuning records name the kind of machine that measured them: x86 vendor, family and model;
    ARM implementer and part; only the first CPU's block is read."""
    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                     "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu avx512f\n\n"
                     "processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\n")
    assert host.this_machine(str(intel)) == host.Machine("intel-6-143", "Intel(R) Xeon(R) Platinum 8480+")
    amd = tmp_path / "amd"
    amd.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                   "model name\t: AMD EPYC 9R14\n")
    assert host.this_machine(str(amd)).id == "amd-25-17"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                   "CPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n")
    monkeypatch.setattr(host, "_device_tree_model", lambda: "Raspberry Pi 4 Model B Rev 1.4")
    assert host.this_machine(str(arm)) == host.Machine("arm-0x41-0xd08", "Raspberry Pi 4 Model B Rev 1.4")
    monkeypatch.setattr(host.platform, "machine", lambda: "riscv64")
    assert host.this_machine(str(tmp_path / "missing")).id == "riscv64-unknown"
    here = host.this_machine()
    assert here.id and " " not in here.id and here.name


def test_target_from_toml_file_and_bad_files(tmp_path):
    good = tmp_path / "myboard.toml"
    good.write_text('description = "mine"\ndevice = "cpu"\n[target]\nkind = "llvm"\nmcpu = "core-avx2"\n')
    t = targets.get(str(good))
    assert t.name == "myboard" and t.tvm == {"kind": "llvm", "mcpu": "core-avx2"} and t.logs == "myboard"
    bad = tmp_path / "bad.toml"
    bad.write_text("device = [unclosed\n")
    with pytest.raises(UserError, match="cannot read target file"):
        targets.get(str(bad))
    nokind = tmp_path / "nokind.toml"
    nokind.write_text('device = "cpu"\n[target]\nmcpu = "x"\n')
    with pytest.raises(UserError, match="lacks the key 'kind'"):
        targets.get(str(nokind))
    assert t.layout == "NHWC"  # convolutions channels-last unless the preset says otherwise
    nchw = tmp_path / "nchw.toml"
    nchw.write_text('layout = "NCHW"\ndevice = "cpu"\n[target]\nkind = "llvm"\n')
    assert targets.get(str(nchw)).layout == "NCHW"
    badlayout = tmp_path / "badlayout.toml"
    badlayout.write_text('layout = "NCWH"\ndevice = "cpu"\n[target]\nkind = "llvm"\n')
    with pytest.raises(UserError, match="layout 'NCWH' is not one of NCHW, NHWC"):
        targets.get(str(badlayout))
