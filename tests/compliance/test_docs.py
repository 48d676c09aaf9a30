"""docs/compliance.md stays honest: every check, template and command option is documented."""

from __future__ import annotations

from pathlib import Path

from mcp_notary.cli.init import init
from mcp_notary.cli.report import report
from mcp_notary.compliance.checks import CHECKS
from mcp_notary.compliance.templates import load_template, template_names

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text()


def test_every_check_and_template_is_documented() -> None:
    for check in CHECKS:
        assert f"| `{check}` |" in DOCS, check
    for name in template_names():
        assert f"| `{name}` |" in DOCS, name
        for spec in load_template(name).checks:
            assert spec.clause.split(" ")[0].removeprefix("Art.") in DOCS, (name, spec.clause)


def test_every_option_of_init_and_report_is_documented() -> None:
    for command in (init, report):
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in DOCS, f"{command.name} {opt}"
