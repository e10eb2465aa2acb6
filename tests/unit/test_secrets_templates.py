"""Template rendering: variables, every helper, source templates, errors that name key and line."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import threading
from types import CodeType

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaultbridge.secrets.errors import InvalidKeyError, TemplateError
from vaultbridge.secrets.sandbox import CODE_CACHE
from vaultbridge.secrets.templates import (
    TemplateContext,
    check_templates,
    render_templates,
    render_templates_async,
)

CANARY = "canary-5eb63bbbe01eeed-secret"

CONTEXT = TemplateContext(
    secrets={
        "username": "admin",
        "password": CANARY,
        "port": 5432,
        "enabled": True,
        "nothing": None,
        "hosts": ["a.example", "b.example"],
        "config": {"region": "eu", "replicas": 3},
        "unicode": "żółć ✓",
    },
    metadata={"version": 7, "custom_metadata": {"owner": "team-a"}},
    labels={"app": "web"},
    annotations={"example.com/tier": "gold"},
)


def render(text: str, context: TemplateContext = CONTEXT, **kwargs: object) -> str:
    return render_templates({"out": text}, context, **kwargs)["out"].decode()  # type: ignore[arg-type]


def render_error(text: str, context: TemplateContext = CONTEXT, **kwargs: object) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        render_templates({"out": text}, context, **kwargs)  # type: ignore[arg-type]
    return info.value


# -- variables ---------------------------------------------------------------------------


def test_variables_are_available() -> None:
    text = (
        "{{ secrets.username }}@{{ secrets.config.region }}:{{ secrets.port + 1 }} "
        "v{{ metadata.version }} {{ metadata.custom_metadata.owner }} {{ labels.app }} "
        "{{ annotations['example.com/tier'] }}"
    )
    assert render(text) == "admin@eu:5433 v7 team-a web gold"


def test_values_keep_their_vault_types() -> None:
    assert render("{{ secrets.enabled is sameas true }} {{ secrets.nothing is none }}") == (
        "True True"
    )
    assert render("{{ secrets.hosts | join(',') }} {{ secrets.hosts | length }}") == (
        "a.example,b.example 2"
    )


def test_loops_conditions_macros_and_whitespace_control() -> None:
    text = (
        "{%- macro line(k, v) -%}{{ k }}={{ v }}{%- endmacro -%}\n"
        "{%- for k, v in secrets.config | dictsort -%}\n"
        "{{ line(k, v) }}{% if not loop.last %};{% endif %}\n"
        "{%- endfor -%}"
    )
    assert render(text) == "region=eu;replicas=3"


def test_loop_controls_and_loop_variable() -> None:
    text = (
        "{% for h in secrets.hosts %}{% if loop.first %}{% continue %}{% endif %}"
        "{{ loop.index }}/{{ loop.length }}:{{ h }}{% endfor %}"
    )
    assert render(text) == "2/2:b.example"
    assert render(
        "{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    ) == ("012")


def test_namespace_and_dict_globals() -> None:
    text = (
        "{% set ns = namespace(n=0) %}{% for h in secrets.hosts %}{% set ns.n = ns.n + 1 %}"
        "{% endfor %}{{ ns.n }} {{ dict(a=1)|tojson }}"
    )
    assert render(text) == '2 {"a": 1}'


def test_trailing_newline_is_kept() -> None:
    assert render("x\n") == "x\n"
    assert render("{{ secrets.username }}\n\n") == "admin\n\n"


def test_unicode_output_is_utf8() -> None:
    out = render_templates({"u": "{{ secrets.unicode }}"}, CONTEXT)["u"]
    assert out == "żółć ✓".encode()


def test_several_templates_render_in_order() -> None:
    out = render_templates({"b": "B{{ labels.app }}", "a": "A"}, CONTEXT)
    assert list(out) == ["b", "a"]
    assert out == {"b": b"Bweb", "a": b"A"}


def test_empty_template_set() -> None:
    assert render_templates({}, CONTEXT) == {}


def test_builtin_filters_that_stay_available() -> None:
    text = (
        "{{ secrets.username | upper }} {{ '  x ' | trim }} {{ secrets.hosts | first }} "
        "{{ secrets.hosts | map('upper') | join('+') }} {{ [3, 1, 2] | sort | list }} "
        "{{ 'a-b' | replace('-', '_') }} {{ '%s=%d' | format('n', 4) }} {{ 'ab' | center(6) }}|"
        "{{ secrets.missing | default('dflt') }} {{ 'x\ny' | indent(2, first=true) }}"
    )
    assert render(text) == (
        "ADMIN x a.example A.EXAMPLE+B.EXAMPLE [1, 2, 3] a_b n=4   ab  |dflt   x\n  y"
    )


def test_str_methods_that_stay_available() -> None:
    text = "{{ secrets.username.upper() }} {{ 'a,b'.split(',') }} {{ '-'.join(['x', 'y']) }}"
    assert render(text) == "ADMIN ['a', 'b'] x-y"
    assert render("{{ '{}:{}'.format(secrets.username, secrets.port) }}") == "admin:5432"


# -- helpers -----------------------------------------------------------------------------


def test_b64enc_and_b64dec() -> None:
    assert render("{{ secrets.password | b64enc }}") == base64.b64encode(CANARY.encode()).decode()
    assert render("{{ 'żółć' | b64enc | b64dec }}") == "żółć"
    assert render("{{ 'YWJj' | b64dec }}") == "abc"
    assert render("{{ 'YW Jj\n' | b64dec }}") == "abc"  # whitespace tolerated
    assert render("{{ 'YWI' | b64dec }}") == "ab"  # missing padding tolerated


def test_b64dec_errors() -> None:
    assert "not valid base64" in str(render_error("{{ '!!!' | b64dec }}"))
    assert "not UTF-8" in str(render_error("{{ '/w==' | b64dec }}"))
    assert "expects text" in str(render_error("{{ 3 | b64enc }}"))


def test_tojson_and_fromjson() -> None:
    assert render("{{ secrets.config | tojson }}") == '{"region": "eu", "replicas": 3}'
    assert render("{{ secrets.config | tojson(sort_keys=true, indent=1) }}") == (
        '{\n "region": "eu",\n "replicas": 3\n}'
    )
    assert render("{{ secrets.unicode | tojson }}") == '"żółć ✓"'
    assert render("{{ '<&>' | tojson }}") == '"<&>"'  # no HTML escaping, this is not HTML
    assert render('{{ (\'{"a": [1, {"b": null}]}\' | fromjson).a[1].b is none }}') == "True"
    round_trip = render("{{ secrets | tojson }}")
    assert json.loads(round_trip) == dict(CONTEXT.secrets)


def test_fromjson_error_does_not_quote_the_document() -> None:
    context = TemplateContext(secrets={"doc": '{"password": "' + CANARY + '" oops'})
    error = render_error("{{ secrets.doc | fromjson }}", context)
    assert "invalid JSON at line 1" in str(error)
    assert CANARY not in str(error)


def test_toyaml() -> None:
    out = render(
        "{{ {'name': secrets.username, 'hosts': secrets.hosts, 'u': secrets.unicode} | toyaml }}"
    )
    assert yaml.safe_load(out) == {
        "name": "admin",
        "hosts": ["a.example", "b.example"],
        "u": "żółć ✓",
    }
    assert out.startswith("name: admin\n")
    assert "żółć" in out


def test_dockerconfigjson() -> None:
    out = render(
        "{{ dockerconfigjson('registry.example:5000', secrets.username, secrets.password) }}"
    )
    auths = json.loads(out)["auths"]
    entry = auths["registry.example:5000"]
    assert entry["username"] == "admin"
    assert entry["password"] == CANARY
    assert base64.b64decode(entry["auth"]).decode() == f"admin:{CANARY}"
    assert "email" not in entry
    with_email = json.loads(render("{{ 'r.io' | dockerconfigjson('u', 'p', 'me@x.io') }}"))
    assert with_email["auths"]["r.io"]["email"] == "me@x.io"
    assert "must not be empty" in str(render_error("{{ dockerconfigjson('', 'u', 'p') }}"))


def _certificate(name: str, key: ec.EllipticCurvePrivateKey) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki_bundle() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    leaf = _certificate("leaf.example", key)
    ca = _certificate("ca.example", ec.generate_private_key(ec.SECP256R1()))
    # Messy bundle: CRLF line ends, indentation, text around the blocks.
    messy = "Subject: leaf\r\n" + leaf.replace("\n", "\r\n") + "\n  \n" + "  " + ca + key_pem
    return {"leaf": leaf, "ca": ca, "key": key_pem, "bundle": messy}


def test_pem_helpers_split_a_bundle(pki_bundle: dict[str, str]) -> None:
    context = TemplateContext(secrets={"bundle": pki_bundle["bundle"]})
    certs = render("{{ secrets.bundle | pem_certificates | join }}", context)
    assert certs == pki_bundle["leaf"] + pki_bundle["ca"]
    loaded = x509.load_pem_x509_certificates(certs.encode())
    assert [c.subject.rfc4514_string() for c in loaded] == ["CN=leaf.example", "CN=ca.example"]
    assert render("{{ secrets.bundle | pem_certificates | first }}", context) == pki_bundle["leaf"]
    assert render("{{ secrets.bundle | pem_certificates | length }}", context) == "2"
    key = render("{{ secrets.bundle | pem_private_key }}", context)
    assert key == pki_bundle["key"]
    serialization.load_pem_private_key(key.encode(), password=None)
    blocks = render("{{ secrets.bundle | pem_blocks | length }}", context)
    assert blocks == "3"
    only_keys = render("{{ secrets.bundle | pem_blocks('PRIVATE KEY') | length }}", context)
    assert only_keys == "1"


def test_pem_private_key_recognises_legacy_types() -> None:
    body = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\nBBBB\n-----END RSA PRIVATE KEY-----\n"
    context = TemplateContext(secrets={"k": "junk\n" + body})
    assert render("{{ secrets.k | pem_private_key }}", context) == body


def test_pem_helpers_ignore_unterminated_blocks() -> None:
    context = TemplateContext(secrets={"k": "-----BEGIN CERTIFICATE-----\nAAAA\n" * 1000})
    assert render("{{ secrets.k | pem_certificates | length }}", context) == "0"
    assert "no private key" in str(render_error("{{ secrets.k | pem_private_key }}", context))


def test_sha256() -> None:
    assert render("{{ 'abc' | sha256 }}") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# -- source templates --------------------------------------------------------------------

SOURCES = {
    "helpers": "{% macro url(user, host) %}postgres://{{ user }}@{{ host }}{% endmacro %}",
    "header": "# owned by {{ metadata.custom_metadata.owner }}\n",
    "base": "[{% block body %}default{% endblock %}]",
}


def test_include_import_and_extends_source_templates() -> None:
    templates = {
        "inc": "{% include 'header' %}x",
        "imp": "{% import 'helpers' as h %}{{ h.url(secrets.username, secrets.hosts[0]) }}",
        "from": "{% from 'helpers' import url %}{{ url('u', 'h') }}",
        "ext": "{% extends 'base' %}{% block body %}{{ labels.app }}{% endblock %}",
    }
    out = render_templates(templates, CONTEXT, source_templates=SOURCES)
    assert out == {
        "inc": b"# owned by team-a\nx",
        "imp": b"postgres://admin@a.example",
        "from": b"postgres://u@h",
        "ext": b"[web]",
    }


def test_source_templates_are_not_outputs() -> None:
    out = render_templates({"a": "x"}, CONTEXT, source_templates=SOURCES)
    assert list(out) == ["a"]


@pytest.mark.parametrize(
    "name", ["missing", "/etc/passwd", "../../etc/passwd", "file:///etc/hosts", "out"]
)
def test_only_source_templates_can_be_loaded(name: str) -> None:
    error = render_error("{% include '" + name + "' %}", source_templates=SOURCES)
    assert "no source template named" in str(error)


def test_error_inside_source_template_names_both() -> None:
    sources = {"bad": "line1\n{{ secrets.nope }}"}
    error = render_error("a\n{% include 'bad' %}", source_templates=sources)
    assert error.template == "out"
    assert error.source_template == "bad"
    assert error.line == 2
    assert "'bad'" in str(error)


def test_syntax_error_inside_source_template() -> None:
    error = render_error("{% include 'bad' %}", source_templates={"bad": "ok\n{% if %}"})
    assert error.source_template == "bad"
    assert error.line == 2
    assert "syntax error" in str(error)


# -- errors ------------------------------------------------------------------------------


def test_syntax_error_names_key_and_line() -> None:
    with pytest.raises(TemplateError) as info:
        render_templates({"good": "x", "tls.crt": "line 1\nline 2\n{% for x in %}"}, CONTEXT)
    error = info.value
    assert error.template == "tls.crt"
    assert error.line == 3
    assert str(error).startswith("template 'tls.crt', line 3: syntax error")
    assert error.reason == "TransformationError"


@pytest.mark.parametrize(
    "text",
    ["{{ x ", "{% if %}", "{% endfor %}", "{{ a | no_such_filter }}", "{% unknown_tag %}"],
)
def test_syntax_errors(text: str) -> None:
    error = render_error(text)
    assert error.line == 1
    assert error.template == "out"


def test_undefined_values_are_errors_not_empty_strings() -> None:
    error = render_error("one\ntwo {{ secrets.pasword }}")
    assert error.line == 2
    assert "pasword" in str(error)
    assert "is undefined" in str(render_error("{{ nope }}"))
    assert render("{{ secrets.nope is defined }}") == "False"


def test_runtime_error_from_python_names_type() -> None:
    error = render_error("{{ secrets.port // 0 }}")
    assert "ZeroDivisionError" in str(error)


def test_invalid_template_key() -> None:
    with pytest.raises(InvalidKeyError):
        render_templates({"not valid": "x"}, CONTEXT)


@pytest.mark.parametrize(
    "text",
    [
        "{{ secrets[secrets.password] }}",
        "{{ secrets.username[secrets.password] }}",
        "{% include secrets.password %}",
        "{{ secrets.password | int + [] }}{{ secrets.x[secrets.password] }}",
        "{{ secrets.password | attr(secrets.password) }}",
        "{{ secrets.password | fromjson }}",
        "{{ secrets.password | b64dec }}",
        "{{ (secrets.password ~ '!') | float + none }}",
        "{{ {}[secrets.password] }}",
        "{{ secrets.password.missing_method() }}",
        "{{ secrets[secrets.password ~ 'x'] }}",
        "{% set d = {secrets.password: 1} %}{{ d.nope }}",
        "{{ secrets.password + 1 }}",
        "{{ namespace()[secrets.password] }}",
    ],
)
def test_no_secret_value_in_any_error_message(text: str) -> None:
    error = render_error(text)
    for part in (str(error), repr(error), error.detail, *map(str, error.args)):
        assert CANARY not in part
    assert error.__cause__ is None
    assert error.__context__ is None


def test_secrets_in_nested_values_and_sources_are_scrubbed_too() -> None:
    context = TemplateContext(
        secrets={"deep": {"list": [CANARY]}}, extra={"sources": [{"secrets": {"s": CANARY}}]}
    )
    error = render_error("{{ secrets[secrets.deep.list[0]] }}", context)
    assert CANARY not in str(error)
    assert "<redacted>" in str(error)


def test_context_repr_hides_values() -> None:
    assert CANARY not in repr(CONTEXT)


# -- check_templates ---------------------------------------------------------------------


def test_check_templates_accepts_valid_ones() -> None:
    check_templates({"a": "{% include 'header' %}{{ secrets.x }}"}, source_templates=SOURCES)


def test_check_templates_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError) as info:
        check_templates({"a": "ok", "b": "\n{{ oops"})
    assert (info.value.template, info.value.line) == ("b", 2)
    with pytest.raises(TemplateError) as info:
        check_templates({}, source_templates={"s": "{% macro %}"})
    assert info.value.template is None
    assert info.value.source_template == "s"
    assert str(info.value).startswith("source template 's', line 1")


def test_check_templates_reports_unknown_includes() -> None:
    with pytest.raises(TemplateError, match="no source template named 'ghost'"):
        check_templates({"a": "{% include 'ghost' %}"}, source_templates=SOURCES)


def test_check_templates_refuses_oversized_sources() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        check_templates({"a": "x" * 70_000})


# -- async -------------------------------------------------------------------------------


async def test_async_rendering_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Spy(dict[str, object]):
        def __getitem__(self, key: str) -> object:
            seen.append(threading.get_ident())
            return super().__getitem__(key)

    context = TemplateContext(secrets=Spy(username="admin"))
    out = await render_templates_async({"u": "{{ secrets.username }}"}, context)
    assert out == {"u": b"admin"}
    assert await render_templates_async({}, context) == {}
    # The context is copied into plain dicts; rendering happens in a worker thread.
    assert loop_thread not in seen


async def test_async_render_errors_propagate() -> None:
    with pytest.raises(TemplateError):
        await render_templates_async({"a": "{{ nope }}"}, CONTEXT)


async def test_concurrent_async_renders_do_not_share_budgets() -> None:
    templates = {"a": "{% for i in range(1000) %}{{ i }}{% endfor %}"}
    results = await asyncio.gather(*(render_templates_async(templates, CONTEXT) for _ in range(8)))
    assert all(r == results[0] for r in results)


# -- compiled code cache -----------------------------------------------------------------


def _constants(code: CodeType) -> list[object]:
    found: list[object] = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found.extend(_constants(const))
        else:
            found.append(const)
    return found


def test_compiled_code_is_reused_and_holds_no_secret_values() -> None:
    text = "{{ secrets.password }}-{{ 'literal' | upper }}-{% include 'header' %}"
    first = render_templates({"c": text}, CONTEXT, source_templates=SOURCES)
    entries = dict(CODE_CACHE._entries)
    second = render_templates({"c": text}, CONTEXT, source_templates=SOURCES)
    assert first == second
    assert dict(CODE_CACHE._entries).keys() == entries.keys()  # nothing compiled again
    for code in CODE_CACHE._entries.values():
        assert not any(CANARY in repr(const) for const in _constants(code))


def test_a_changed_template_is_compiled_anew() -> None:
    assert render_templates({"c": "one"}, CONTEXT) == {"c": b"one"}
    assert render_templates({"c": "two"}, CONTEXT) == {"c": b"two"}
