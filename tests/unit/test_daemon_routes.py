"""An event selects a configured source or destination; it never widens what the daemon reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydantic import ValidationError
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from dxai.configs.errors import ConfigError, SourceNotAllowedError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import make_routes
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways import DicomWebGateway, DimseSink, FolderSink, LocalFolderSource
from dxai.daemon.gateways.dimse import DimseSource as DimseGateway
from dxai.daemon.gateways.local import read_inside
from dxai.daemon.gateways.resolve import RefusingSink, Routes, landing_batches, url_key

ARCHIVE = "https://vna.example.org:8443/dicom-web"
SPELLED_OTHERWISE = "HTTPS://VNA.Example.org:8443/dicom-web/"


def _event(source: dict[str, Any], destination: str = "default") -> StudyEvent:
    return StudyEvent.model_validate(
        {
            "event_type": "study_received",
            "study_uid": "1.2.3",
            "destination": destination,
            "exchange_job_id": "job-1",
            "source": source,
        }
    )


def _config(tmp: Path, **extra: Any) -> DxaiConfig:
    data: dict[str, Any] = {"state": {"data_dir": str(tmp / "data")}, **extra}
    return DxaiConfig.model_validate(data)


def _archive_config(tmp: Path) -> DxaiConfig:
    token = tmp / "token"
    token.write_text("secret-token\n")
    return _config(
        tmp,
        source_dicomweb={"base_url": "http://legacy.example.org/wado"},
        sources={
            "vna": {"kind": "dicomweb", "base_url": ARCHIVE, "bearer_token_file": str(token)},
            "pacs": {"kind": "dimse", "ae_title": "PACS", "host": "Pacs.Example.org", "port": 104},
        },
    )


def test_url_key_normalises_scheme_host_port_and_trailing_slash() -> None:
    assert url_key(SPELLED_OTHERWISE) == url_key(ARCHIVE)
    assert url_key(ARCHIVE.upper()) != url_key(ARCHIVE)  # the path is case-sensitive
    assert url_key("http://h/x") == url_key("http://h:80/x")
    assert url_key("https://h/x") != url_key("http://h/x")
    for bad in ("http://u:p@h/x", "http://h/x?q=1", "ftp://h/x", "http://h:99999/x", "x"):
        assert url_key(bad) is None


def test_dicomweb_event_gets_the_configured_endpoint_and_credentials(tmp_path: Path) -> None:
    routes = Routes(_archive_config(tmp_path))
    named = routes.source_for(_event({"name": "vna"}))
    by_url = routes.source_for(_event({"kind": "dicomweb", "base_url": SPELLED_OTHERWISE}))
    legacy = routes.source_for(_event({"kind": "dicomweb"}))
    assert isinstance(named, DicomWebGateway) and isinstance(by_url, DicomWebGateway)
    assert named.endpoint.base_url == by_url.endpoint.base_url == ARCHIVE
    assert by_url.endpoint.bearer_token_file == str(tmp_path / "token")
    assert isinstance(legacy, DicomWebGateway)
    assert legacy.endpoint.base_url == "http://legacy.example.org/wado"


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "dicomweb", "base_url": "http://127.0.0.1:9/steal"},
        {"kind": "dicomweb", "base_url": "https://vna.example.org/dicom-web"},  # other port
        {"kind": "dicomweb", "base_url": "https://user:pw@vna.example.org:8443/dicom-web"},
        {"kind": "dicomweb", "name": "vna", "base_url": "http://127.0.0.1:9/steal"},
        {"kind": "dicomweb", "name": "pacs"},  # a dimse source
        {"name": "nosuch"},
        {"kind": "dimse", "ae_title": "PACS", "host": "10.6.6.6", "port": 104},
        {"kind": "dimse", "name": "pacs", "host": "10.6.6.6"},
        {"kind": "dimse", "name": "pacs", "method": "c-move"},
        {"kind": "dimse", "name": "pacs", "move_destination_ae": "EVIL"},
    ],
)
def test_sources_the_config_does_not_name_are_refused(
    tmp_path: Path, source: dict[str, Any]
) -> None:
    routes = Routes(_archive_config(tmp_path))
    with pytest.raises(SourceNotAllowedError) as info:
        routes.source_for(_event(source))
    assert info.value.code == "source_not_allowed"
    assert "10.6.6.6" not in str(info.value) and "steal" not in str(info.value)


def test_dimse_event_matches_the_configured_peer(tmp_path: Path) -> None:
    routes = Routes(_archive_config(tmp_path))
    peer = {"kind": "dimse", "ae_title": "PACS", "host": "pacs.example.ORG", "port": 104}
    for source in (peer, {"name": "pacs"}, {"kind": "dimse", "name": "pacs", "method": "c-get"}):
        gateway = routes.source_for(_event(source))
        assert isinstance(gateway, DimseGateway) and gateway.method == "c-get"
        assert (gateway.peer.host, gateway.move_target) == ("Pacs.Example.org", None)


def test_no_default_dicomweb_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceNotAllowedError):
        Routes(_config(tmp_path)).source_for(_event({"kind": "dicomweb"}))


def test_local_paths_must_lie_inside_a_configured_root(tmp_path: Path) -> None:
    root = tmp_path / "scans"
    (root / "study").mkdir(parents=True)
    outside = tmp_path / "private"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    routes = Routes(_config(tmp_path, sources={"scans": {"kind": "local", "root": str(root)}}))
    inside = routes.source_for(_event({"kind": "local", "path": str(root / "study")}))
    assert isinstance(inside, LocalFolderSource) and inside.root == (root / "study").resolve()
    named = routes.source_for(_event({"kind": "local", "name": "scans", "path": "study"}))
    assert isinstance(named, LocalFolderSource) and named.root == inside.root
    whole = routes.source_for(_event({"name": "scans"}))
    assert isinstance(whole, LocalFolderSource) and whole.root == root.resolve()
    refused = [
        "/etc",
        str(root / "escape"),
        str(root / "study" / ".." / ".." / "private"),
        str(root / "missing"),
        str(outside),
    ]
    for path in refused:
        with pytest.raises(SourceNotAllowedError):
            routes.source_for(_event({"kind": "local", "path": path}))
    with pytest.raises(SourceNotAllowedError):
        routes.source_for(_event({"kind": "local", "name": "scans", "path": "/etc"}))


def test_landing_zone_is_always_a_local_root_in_embedded_mode(tmp_path: Path) -> None:
    config = _config(tmp_path)
    batch = landing_batches(config) / "scp-1-abc"
    batch.mkdir(parents=True)
    source = Routes(config).source_for(_event({"kind": "local", "path": str(batch)}))
    assert isinstance(source, LocalFolderSource) and source.root == batch.resolve()
    production = _config(tmp_path, mode="production", kafka={})
    with pytest.raises(SourceNotAllowedError):
        Routes(production).source_for(_event({"kind": "local", "path": str(batch)}))


def test_destinations_by_name_with_the_legacy_one_as_default(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        destination_dimse={"ae_title": "DEST", "host": "127.0.0.1", "port": 4243},
        destinations={
            "research": {"kind": "dicomweb", "base_url": "https://research.example.org/dw"},
            "export": {"kind": "folder", "path": str(tmp_path / "export")},
        },
    )
    routes = Routes(config)
    assert isinstance(routes.sink_for(_event({"name": "x"}, "default")), DimseSink)
    research = routes.sink_for(_event({"name": "x"}, "research"))
    assert isinstance(research, DicomWebGateway)
    assert routes.sink_for(_event({"name": "x"}, "research")) is research  # one per route
    assert isinstance(routes.sink_for(_event({"name": "x"}, "export")), FolderSink)
    with pytest.raises(SourceNotAllowedError):
        routes.sink_for(_event({"name": "x"}, "elsewhere"))
    with pytest.raises(SourceNotAllowedError):  # refused before anything is fetched
        routes.source_for(_event({"kind": "local", "path": str(tmp_path)}, "elsewhere"))


def test_without_destinations_every_event_goes_to_the_default(tmp_path: Path) -> None:
    routes = Routes(_config(tmp_path))
    sink = routes.sink_for(_event({"name": "x"}, "any-name-at-all"))
    assert isinstance(sink, FolderSink)
    assert sink.root == tmp_path / "data" / "results" / "instances"
    production = Routes(_config(tmp_path, mode="production", kafka={}))
    assert not production.destinations and isinstance(production.fallback_sink(), RefusingSink)
    with pytest.raises(ConfigError):
        production.sink_for(_event({"name": "x"}))


def test_default_given_twice_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"sources\.default"):
        _config(
            tmp_path,
            source_dicomweb={"base_url": "http://a/dw"},
            sources={"default": {"kind": "dicomweb", "base_url": "http://b/dw"}},
        )
    with pytest.raises(ValidationError, match=r"destinations\.default"):
        _config(
            tmp_path,
            destination_dicomweb={"base_url": "http://a/dw"},
            destinations={"default": {"kind": "folder", "path": "/tmp/x"}},
        )


@pytest.mark.parametrize(
    ("endpoint", "rule"),
    [
        ({"base_url": "file:///etc/passwd"}, "http"),
        ({"base_url": "http://h/dw", "tls_ca_file": "/ca.pem"}, "https"),
        ({"base_url": "https://h/dw", "tls_key_file": "/k.pem"}, "tls_cert_file"),
        ({"base_url": "https://u:p@h/dw"}, "credentials"),
    ],
)
def test_endpoint_rules(tmp_path: Path, endpoint: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        _config(tmp_path, sources={"s": {"kind": "dicomweb", **endpoint}})


def test_open_webhook_only_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"embedded\.bind_host"):
        _config(tmp_path, embedded={"bind_host": "0.0.0.0"})
    for host in ("127.0.0.1", "::1", "localhost"):
        assert _config(tmp_path, embedded={"bind_host": host})
    assert _config(
        tmp_path, embedded={"bind_host": "0.0.0.0", "webhook_hmac_secret_file": "/run/s"}
    )
    assert _config(tmp_path, mode="production", kafka={}, embedded={"bind_host": "0.0.0.0"})


def test_startup_checks_destinations_and_tls_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no destination"):
        make_routes(_config(tmp_path, mode="production", kafka={}))
    bad_ca = {"kind": "dicomweb", "base_url": "https://h/dw", "tls_ca_file": str(tmp_path / "x")}
    with pytest.raises(ConfigError, match="tls_ca_file"):
        make_routes(_config(tmp_path, sources={"vna": bad_ca}))
    bad_dimse = {"kind": "dimse", "ae_title": "T", "host": "h", "port": 1, "tls": True}
    bad_dimse["tls_cert_file"] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="tls_cert_file"):
        make_routes(_config(tmp_path, destinations={"t": bad_dimse}))
    assert make_routes(_config(tmp_path)).destinations


async def test_links_inside_a_root_that_point_out_are_not_read(tmp_path: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")
    assert ct is not None
    root, outside = tmp_path / "scans", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    mine, theirs = pydicom.dcmread(ct), pydicom.dcmread(ct)
    theirs.SeriesInstanceUID = generate_uid()
    mine.save_as(root / "mine.dcm")
    theirs.save_as(outside / "theirs.dcm")
    (root / "leak.dcm").symlink_to(outside / "theirs.dcm")
    routes = Routes(_config(tmp_path, sources={"scans": {"kind": "local", "root": str(root)}}))
    source = routes.source_for(_event({"name": "scans"}))
    study = str(mine.StudyInstanceUID)
    assert await source.list_series(study) == [str(mine.SeriesInstanceUID)]
    with pytest.raises(SourceNotAllowedError):
        read_inside(root / "leak.dcm", root.resolve())
    assert read_inside(root / "mine.dcm", root.resolve()) == (root / "mine.dcm").read_bytes()
