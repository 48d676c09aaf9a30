"""Templates are data: every shipped template loads and validates, they combine by the stated
rules, and `mcp-notary init` writes a file the other commands accept."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_notary.cli.init import init
from mcp_notary.compliance.checks import CHECKS
from mcp_notary.compliance.templates import (
    combine,
    load_template,
    load_templates,
    parse_days,
    parse_template,
    render_config,
    template_names,
)
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError
from mcp_notary.redact.settings import RedactionPolicy

# The automated checks each template must map (issue 8 and research/compliance.md).
REQUIRED = {
    "field_completeness",
    "reads_audited",
    "chain_verified",
    "access_review",
    "pipeline_failures_alerted",
    "redaction_in_force",
}


def test_the_five_templates_ship_and_map_clauses_to_known_checks() -> None:
    assert template_names() == ["eu-ai-act", "gdpr", "hipaa", "pci-dss", "soc2"]
    for name in template_names():
        t = load_template(name)
        checks = {c.check for c in t.checks}
        assert checks <= set(CHECKS)
        assert checks >= REQUIRED, (name, REQUIRED - checks)
        assert all(c.query or c.check == "manual" for c in t.checks), name
        RedactionPolicy.from_mapping(t.redaction)  # a valid [redaction] overlay
        assert t.retention.total_days
        for spec in t.checks:  # completeness is checked against what capture makes mandatory
            if spec.check == "field_completeness":
                assert list(spec.params["fields"]) == list(t.capture["mandatory"]), spec.clause


def test_pci_maps_the_clauses_the_issue_names() -> None:
    pci = {c.clause: c for c in load_template("pci-dss").checks}
    assert pci["10.2.2"].check == "field_completeness"
    assert pci["10.2.1.3"].check == "reads_audited"
    assert pci["10.3.2"].check == "chain_verified"
    assert pci["10.5.1"].check == "retention_oldest_event" and pci["10.5.1"].params == {"days": 365}
    assert pci["10.7.2"].check == "pipeline_failures_alerted"


def test_combined_templates_take_longest_retention_and_shortest_payload_ttl() -> None:
    both = combine(load_templates(["pci-dss,gdpr", "hipaa"]))
    assert [t.name for t in both.templates] == ["pci-dss", "gdpr", "hipaa"]
    assert both.retention.total_days == 6 * 365  # HIPAA
    assert both.retention.hot_days == 365  # HIPAA
    assert both.retention.payload_days == 30  # GDPR
    assert both.redaction["verbosity"] == "digest"  # the strictest
    assert "/params/arguments/cvv" in both.redaction["sensitive"]  # PCI SAD
    assert "/params/arguments/mrn" in both.redaction["sensitive"]  # HIPAA Safe Harbor
    assert both.capture["durability"] == "strict"
    assert both.access["review_cadence"] == "P30D"  # HIPAA's, the shortest


def test_a_rule_stays_disabled_only_if_every_template_disables_it() -> None:
    source = resources.files("mcp_notary.compliance.templates").joinpath("soc2.toml")
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    raw["redaction"]["disable_rules"] = ["pii.phone_nanp"]
    loose = parse_template(raw, "test")
    assert combine([loose]).redaction["disable_rules"] == ["pii.phone_nanp"]
    assert "disable_rules" not in combine([loose, load_template("pci-dss")]).redaction


def test_bad_templates_and_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown compliance template"):
        load_template("iso-9001")
    with pytest.raises(ConfigError, match="unknown check"):
        parse_template(
            {"template": {"name": "x"}, "checks": [{"clause": "1", "check": "vibes"}]}, "x"
        )
    with pytest.raises(ConfigError, match="verbosity"):
        parse_template(
            {
                "template": {"name": "x"},
                "redaction": {"verbosity": "loud"},
                "checks": [{"clause": "1", "check": "manual"}],
            },
            "x",
        )
    assert parse_days("P6Y", "x") == 2190 and parse_days("P12M", "x") == 360
    assert parse_days(90, "x") == 90 and parse_days("", "x") is None
    with pytest.raises(ConfigError):
        parse_days("a year", "x")


def test_init_writes_a_commented_config_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "mcp-notary.toml"
    runner = CliRunner()
    result = runner.invoke(init, ["--template", "pci-dss,gdpr", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# mcp-notary configuration from compliance template(s): pci-dss, gdpr")
    assert "mcp-notary retention apply" in text  # the file says what applies the periods
    config = NotaryConfig.load(out)
    assert config.compliance["templates"] == ["pci-dss", "gdpr"]
    assert config.retention == {"hot": "P100D", "total": "P365D", "payload": "P30D"}
    assert config.durability == "strict"
    assert "principal" in config.capture["mandatory"]
    assert config.access["separate_roles"] == [["admin", "auditor"]]
    RedactionPolicy.from_mapping(config.redaction)
    again = runner.invoke(init, ["--template", "soc2", "-o", str(out)])
    assert again.exit_code != 0 and "exists" in str(again.exception)


@pytest.mark.parametrize("name", template_names())
def test_every_single_template_renders_a_loadable_config(name: str, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(render_config(combine([load_template(name)]), store="/var/lib/a.db"))
    config = NotaryConfig.load(path)
    assert config.store == "/var/lib/a.db" and config.compliance["templates"] == [name]
