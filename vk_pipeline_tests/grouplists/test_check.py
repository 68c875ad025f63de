"""The corpus read and resolved against the emulator over HTTP: groups and rejected lines per file
equal what each file's line descriptions say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.grouplists import FileReport, check_files, load
from vk_pipeline.testing.corpus import CorpusFile, corpus
from vk_pipeline.vk import VKClient, VKResource


@pytest.fixture
def client(emulator) -> Iterator[VKClient]:
    resource = VKResource(
        access_token=DEMO_TOKEN, api_base_url=emulator.base_url, requests_per_second=1000
    )
    with resource.get_client() as c:
        yield c


def rejected_by_line(report: FileReport) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in report.rejections:
        out.setdefault(r.line, []).append(r.reason)
    return out


def assert_matches(report: FileReport, expected: CorpusFile) -> None:
    assert report.file_error == expected.file_error or (
        expected.file_error is not None
        and report.file_error is not None
        and expected.file_error in report.file_error
    ), report.file_error
    assert [g.id for g in report.groups] == expected.groups, report.name
    if expected.sheets:
        got: dict[str, dict[int, list[str]]] = {}
        for r in report.rejections:
            got.setdefault(r.sheet, {}).setdefault(r.line, []).append(r.reason)
        want = expected.sheets
    else:
        got, want = {"": rejected_by_line(report)}, {"": expected.rejected}
    assert {s: sorted(lines) for s, lines in got.items() if lines} == {
        s: sorted(lines) for s, lines in want.items() if lines
    }, report.name
    for sheet, lines in want.items():
        for line, fragments in lines.items():
            reasons = got[sheet][line]
            assert len(reasons) == len(fragments), (report.name, line, reasons)
            for fragment, reason in zip(fragments, reasons, strict=True):
                assert fragment in reason, (report.name, line, reason)
    assert report.duplicates == expected.duplicates, report.name


def test_corpus_groups_and_rejections_per_file(small_world: World, client, tmp_path):
    files = corpus(small_world)
    paths = [f.write(tmp_path) for f in files]
    reports, requests = check_files([(str(p), load(p)) for p in paths], client)
    for report, expected in zip(reports, files, strict=True):
        assert_matches(report, expected)
    # All eleven files' references are resolved together: one groups.getById call.
    assert requests == 1


def test_banned_and_deleted_communities_are_registered_with_their_status(
    small_world: World, client, tmp_path
):
    kinds = {g: small_world.group_kind(g) for g in small_world.group_ids()}
    path = tmp_path / "gone.txt"
    path.write_text("\n".join(f"club{g}" for g in kinds) + "\n")
    [report], _ = check_files([(str(path), load(path))], client)
    status = {g.id: g.info.deactivated for g in report.groups}
    assert status == {g: (k if k in ("banned", "deleted") else None) for g, k in kinds.items()}


def test_json_shape(small_world: World, client, tmp_path):
    spellings = corpus(small_world)[1]  # rejects.txt: rejected lines and one group
    path = spellings.write(tmp_path)
    [report], _ = check_files([(str(path), load(path))], client)
    data = report.to_json()
    assert data["file"] == str(path)
    assert data["groups"] == spellings.groups
    assert [r["line"] for r in data["rejected"]] == sorted(spellings.rejected)
    assert {"line", "text", "reason"} <= set(data["rejected"][0])


def test_missing_file_is_a_file_error(client, tmp_path):
    [report], _ = check_files([("nope.txt", load(tmp_path / "nope.txt"))], client)
    assert report.file_error is not None and "cannot be read" in report.file_error
