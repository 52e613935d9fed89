"""`edge doctor` on a broken install: a missing required package is a FAIL line, not a traceback."""
import subprocess
import sys

# torch, numpy and yaml made unimportable before anything of edge is imported
PROBE = """
import sys
for name in ("torch", "numpy", "yaml"):
    sys.modules[name] = None
from edge.doctor import FAIL, run_checks
checks = run_checks(sys.argv[1])
for check in checks:
    print(check)
"""


def test_doctor_reports_missing_packages_and_goes_on(tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text("device: drone-1\n")
    result = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL torch: not installed") for line in lines), lines
    assert any(line.startswith("FAIL") and "numpy is not installed" in line for line in lines), lines
    assert any(line.startswith("FAIL config") and "yaml is not installed" in line for line in lines), lines
    assert any(line.startswith("OK   python") for line in lines), lines
