"""The full pipeline: sources -> merge -> excludes -> includes -> templates -> size check."""

from __future__ import annotations

import json
import threading

import pytest

from vaultbridge.secrets import (
    InvalidKeyError,
    InvalidRegexError,
    KeyCollisionError,
    SecretData,
    SecretTooLargeError,
    Source,
    TemplateError,
    TemplateRef,
    TransformationError,
    TransformationRef,
    TransformationSpec,
    build_secret_data,
    build_secret_data_async,
    combine_transformations,
    validate_transformation,
)

CANARY = "canary-9e107d9d372bb682-secret"

KV2_RESPONSE = {
    "data": {"username": "app", "password": CANARY, "port": 5432},
    "metadata": {"version": 3, "created_time": "2024-01-01T00:00:00Z", "custom_metadata": None},
}


def kv2_source(prefix: str = "") -> Source:
    return Source(
        data=KV2_RESPONSE["data"],
        prefix=prefix,
        metadata=KV2_RESPONSE["metadata"],
        raw=KV2_RESPONSE,
    )


def test_plain_source_without_transformation() -> None:
    data = build_secret_data([kv2_source()])
    assert isinstance(data, SecretData)
    assert dict(data) == {
        "username": b"app",
        "password": CANARY.encode(),
        "port": b"5432",
        "_raw": json.dumps(KV2_RESPONSE, separators=(",", ":"), sort_keys=True).encode(),
    }
    assert CANARY not in repr(data)


def test_exclude_raw() -> None:
    data = build_secret_data([kv2_source()], TransformationSpec(exclude_raw=True))
    assert set(data) == {"username", "password", "port"}


def test_source_repr_hides_values() -> None:
    assert CANARY not in repr(kv2_source())
    assert "password" in repr(kv2_source())


def test_multiple_sources_with_prefixes_keep_each_raw() -> None:
    other = Source(data={"token": "t"}, prefix="api_")
    data = build_secret_data([kv2_source("db_"), other])
    assert set(data) == {
        "db_username",
        "db_password",
        "db_port",
        "db__raw",
        "api_token",
        "api__raw",
    }
    assert json.loads(data["api__raw"]) == {"token": "t"}


def test_multiple_sources_without_prefixes_collide_on_raw() -> None:
    with pytest.raises(KeyCollisionError) as info:
        build_secret_data([Source({"a": "1"}), Source({"b": "2"})])
    assert info.value.key == "_raw"
    merged = build_secret_data(
        [Source({"a": "1"}), Source({"b": "2"})], TransformationSpec(exclude_raw=True)
    )
    assert dict(merged) == {"a": b"1", "b": b"2"}


def test_collision_between_sources_names_indexes_not_values() -> None:
    with pytest.raises(KeyCollisionError) as info:
        build_secret_data(
            [Source({"password": CANARY}), Source({"password": "other"})],
            TransformationSpec(exclude_raw=True),
        )
    assert (info.value.first, info.value.second) == (0, 1)
    assert CANARY not in str(info.value)


def test_excludes_then_includes() -> None:
    spec = TransformationSpec(includes=["^user", "^pass", "^port$"], excludes=["^pass"])
    data = build_secret_data([kv2_source()], spec)
    assert set(data) == {"username", "port"}


def test_filters_apply_to_raw_like_any_key() -> None:
    data = build_secret_data([kv2_source()], TransformationSpec(excludes=["^_raw$"]))
    assert "_raw" not in data
    data = build_secret_data([kv2_source()], TransformationSpec(includes=["name"]))
    assert set(data) == {"username"}


def test_templates_see_unfiltered_data_and_are_never_filtered() -> None:
    spec = TransformationSpec(
        templates={"url": "postgres://{{ secrets.username }}:{{ secrets.password }}@db"},
        excludes=[".*"],
    )
    data = build_secret_data([kv2_source()], spec)
    assert dict(data) == {"url": f"postgres://app:{CANARY}@db".encode()}


def test_template_replaces_source_key_of_the_same_name() -> None:
    spec = TransformationSpec(templates={"password": "{{ secrets.password | b64enc }}"})
    data = build_secret_data([kv2_source()], spec)
    assert data["password"] != CANARY.encode()
    assert data["username"] == b"app"


def test_template_context_has_typed_values_metadata_labels_annotations() -> None:
    spec = TransformationSpec(
        templates={
            "info": "{{ secrets.port + 1 }} v{{ metadata.version }} {{ labels.app }} "
            "{{ annotations.note }}"
        },
        exclude_raw=True,
    )
    data = build_secret_data(
        [kv2_source()], spec, labels={"app": "web"}, annotations={"note": "hi"}
    )
    assert data["info"] == b"5433 v3 web hi"


def test_templates_with_several_sources() -> None:
    spec = TransformationSpec(
        templates={
            "pair": "{{ secrets.db_username }}/{{ secrets.api_token }}",
            "prefixes": "{% for s in sources %}[{{ s.prefix }}{{ s.secrets | length }}]"
            "{% endfor %}",
            "meta": "{{ metadata.version }}",
        },
        exclude_raw=True,
    )
    sources = [kv2_source("db_"), Source({"token": "t"}, prefix="api_", metadata={"v": 1})]
    data = build_secret_data(sources, spec)
    assert data["pair"] == b"app/t"
    assert data["prefixes"] == b"[db_3][api_1]"
    assert data["meta"] == b"3"  # the first source's metadata


def test_source_templates_in_pipeline() -> None:
    spec = TransformationSpec(
        templates={"conf": "{% import 'lib' as lib %}{{ lib.kv('user', secrets.username) }}"},
        source_templates={"lib": "{% macro kv(k, v) %}{{ k }}={{ v }}{% endmacro %}"},
        exclude_raw=True,
        excludes=[".*"],
    )
    assert dict(build_secret_data([kv2_source()], spec)) == {"conf": b"user=app"}


def test_template_errors_never_leak_values() -> None:
    spec = TransformationSpec(templates={"bad": "{{ secrets[secrets.password] }}"})
    with pytest.raises(TemplateError) as info:
        build_secret_data([kv2_source()], spec)
    assert CANARY not in str(info.value)
    assert info.value.reason == "TransformationError"


def test_invalid_regex_fails_before_any_work() -> None:
    with pytest.raises(InvalidRegexError):
        build_secret_data([kv2_source()], TransformationSpec(includes=["("]))


def test_invalid_vault_key_is_reported() -> None:
    with pytest.raises(InvalidKeyError) as info:
        build_secret_data([Source({"bad key": CANARY})])
    assert CANARY not in str(info.value)


def test_size_limit_applies_to_the_final_data() -> None:
    big = Source({"blob": "x" * 600_000}, prefix="a_")
    other = Source({"blob": "y" * 600_000}, prefix="b_")
    with pytest.raises(SecretTooLargeError):
        build_secret_data([big, other], TransformationSpec(exclude_raw=True))
    # Filtering one of them out brings it under the limit.
    spec = TransformationSpec(exclude_raw=True, excludes=["^b_"])
    assert set(build_secret_data([big, other], spec)) == {"a_blob"}
    with pytest.raises(SecretTooLargeError):
        build_secret_data([Source({"a": "xx"})], max_bytes=5)


def test_no_sources_gives_only_templates() -> None:
    spec = TransformationSpec(templates={"static": "value"})
    assert dict(build_secret_data([], spec)) == {"static": b"value"}


# -- combine_transformations -----------------------------------------------------------------

SHARED = TransformationSpec(
    templates={"url": "U", "dsn": "D"},
    source_templates={"lib": "L"},
    includes=["^shared_inc"],
    excludes=["^shared_exc"],
)


def test_combine_without_refs_is_inline() -> None:
    inline = TransformationSpec(templates={"a": "A"}, includes=["x"], exclude_raw=True)
    combined = combine_transformations(inline)
    assert combined.templates == {"a": "A"}
    assert tuple(combined.includes) == ("x",)
    assert combined.exclude_raw
    assert combine_transformations(None) == TransformationSpec(
        templates={}, source_templates={}, includes=(), excludes=()
    )


def test_combine_takes_all_templates_and_filters_of_refs() -> None:
    inline = TransformationSpec(templates={"own": "O"}, includes=["^own"], excludes=["^no"])
    combined = combine_transformations(inline, [TransformationRef("ns/shared", SHARED)])
    assert combined.templates == {"url": "U", "dsn": "D", "own": "O"}
    assert combined.source_templates == {"lib": "L"}
    assert tuple(combined.includes) == ("^own", "^shared_inc")
    assert tuple(combined.excludes) == ("^no", "^shared_exc")


def test_combine_ignore_includes_and_excludes() -> None:
    ref = TransformationRef("ns/shared", SHARED, ignore_includes=True, ignore_excludes=True)
    combined = combine_transformations(None, [ref])
    assert tuple(combined.includes) == ()
    assert tuple(combined.excludes) == ()
    assert combined.templates == {"url": "U", "dsn": "D"}


def test_combine_template_refs_select_and_rename() -> None:
    ref = TransformationRef(
        "ns/shared", SHARED, template_refs=[TemplateRef("url", key_override="DATABASE_URL")]
    )
    assert combine_transformations(None, [ref]).templates == {"DATABASE_URL": "U"}


def test_combine_unknown_template_ref() -> None:
    ref = TransformationRef("ns/shared", SHARED, template_refs=[TemplateRef("ghost")])
    with pytest.raises(TransformationError, match="'ns/shared' has no template 'ghost'"):
        combine_transformations(None, [ref])


def test_combine_two_refs_rendering_the_same_key_is_an_error() -> None:
    refs = [TransformationRef("ns/one", SHARED), TransformationRef("ns/two", SHARED)]
    with pytest.raises(TransformationError, match="'ns/one' and 'ns/two'"):
        combine_transformations(None, refs)
    # Renaming one of them resolves it.
    refs[1] = TransformationRef(
        "ns/two", SHARED, template_refs=[TemplateRef("url", key_override="url2")]
    )
    assert set(combine_transformations(None, refs).templates) == {"url", "dsn", "url2"}


def test_combine_inline_template_overrides_referenced_one() -> None:
    inline = TransformationSpec(templates={"url": "mine"})
    combined = combine_transformations(inline, [TransformationRef("ns/shared", SHARED)])
    assert combined.templates["url"] == "mine"


def test_combine_conflicting_source_templates() -> None:
    other = TransformationSpec(source_templates={"lib": "different"})
    same = TransformationSpec(source_templates={"lib": "L"})
    combine_transformations(None, [TransformationRef("a", SHARED, ignore_includes=True),
                                   TransformationRef("b", same)])  # fmt: skip
    with pytest.raises(TransformationError, match="source template 'lib'"):
        combine_transformations(
            None, [TransformationRef("a", SHARED), TransformationRef("b", other)]
        )
    inline = TransformationSpec(source_templates={"lib": "inline wins"})
    combined = combine_transformations(inline, [TransformationRef("a", SHARED)])
    assert combined.source_templates["lib"] == "inline wins"


def test_combine_exclude_raw_from_any() -> None:
    ref = TransformationRef("a", TransformationSpec(exclude_raw=True))
    assert combine_transformations(None, [ref]).exclude_raw
    assert not combine_transformations(None, [TransformationRef("b", SHARED)]).exclude_raw


def test_combined_spec_drives_the_pipeline() -> None:
    shared = TransformationSpec(
        templates={"dsn": "{% include 'fmt' %}"},
        source_templates={"fmt": "{{ secrets.username }}@{{ labels.app }}"},
        excludes=["^password$"],
    )
    spec = combine_transformations(
        TransformationSpec(exclude_raw=True), [TransformationRef("ns/shared", shared)]
    )
    data = build_secret_data([kv2_source()], spec, labels={"app": "web"})
    assert dict(data) == {"username": b"app", "port": b"5432", "dsn": b"app@web"}


# -- validation and async ----------------------------------------------------------------------


def test_validate_transformation() -> None:
    validate_transformation(SHARED)
    with pytest.raises(InvalidRegexError):
        validate_transformation(TransformationSpec(excludes=[r"(a)\1"]))
    with pytest.raises(TemplateError):
        validate_transformation(TransformationSpec(templates={"a": "{% if %}"}))
    with pytest.raises(InvalidKeyError):
        validate_transformation(TransformationSpec(templates={"bad key": "x"}))
    with pytest.raises(TemplateError, match="no source template"):
        validate_transformation(TransformationSpec(templates={"a": "{% include 'x' %}"}))


async def test_async_plain_conversion_runs_inline() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Spy(dict[str, object]):
        def items(self):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return super().items()

    data = await build_secret_data_async([Source(Spy(a="1"))])
    assert dict(data)["a"] == b"1"
    assert seen and set(seen) == {loop_thread}


async def test_async_with_templates_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Spy(dict[str, object]):
        def items(self):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return super().items()

    spec = TransformationSpec(templates={"t": "{{ secrets.a }}"}, exclude_raw=True)
    data = await build_secret_data_async([Source(Spy(a="1"))], spec)
    assert dict(data) == {"a": b"1", "t": b"1"}
    assert seen and loop_thread not in seen


async def test_async_errors_propagate() -> None:
    with pytest.raises(TemplateError):
        await build_secret_data_async(
            [kv2_source()], TransformationSpec(templates={"t": "{{ nope }}"})
        )
