"""Properties of the sandboxed templates (`vaultbridge.secrets.templates`).

The strongest one: whatever a template does — valid, broken, hostile — rendering returns
bytes or raises `TemplateError`, and the message never contains a secret value.
"""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.sandbox import RenderLimits
from vaultbridge.secrets.templates import TemplateContext, render_templates

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Small budgets keep hostile examples quick; the limits' own tests cover the defaults.
LIMITS = RenderLimits(max_operations=20_000, timeout_seconds=0.5, max_output_bytes=65_536)

secret_values = st.text(min_size=0, max_size=60)
canaries = st.text("QWZKJVX", min_size=12, max_size=20).map(lambda s: "CANARY" + s)


@FAST
@given(secret_values)
def test_a_plain_reference_renders_the_value_exactly(value: str) -> None:
    out = render_templates({"k": "{{ secrets.v }}"}, TemplateContext(secrets={"v": value}))
    assert out == {"k": value.encode("utf-8")}


@FAST
@given(secret_values)
def test_b64_and_json_helpers_round_trip(value: str) -> None:
    ctx = TemplateContext(secrets={"v": value})
    out = render_templates(
        {
            "b64": "{{ secrets.v | b64enc | b64dec }}",
            "json": "{{ (secrets.v | tojson | fromjson) == secrets.v }}",
            "enc": "{{ secrets.v | b64enc }}",
        },
        ctx,
    )
    assert out["b64"] == value.encode()
    assert out["json"] == b"True"
    assert base64.b64decode(out["enc"]) == value.encode()


FRAGMENTS = [
    "{{ secrets.v }}", "{{ secrets.v | upper }}", "{{ secrets[secrets.v] }}",
    "{{ secrets.v.nope }}", "{{ secrets.v | int + none }}", "{% include secrets.v %}",
    "{{ secrets.v * 3 }}", "{{ secrets.v[", "{% if secrets.v %}", "{% endif %}",
    "{% for c in secrets.v %}{{ c }}{% endfor %}", "{{ ''.__class__ }}",
    "{{ secrets.v | fromjson }}", "{{ secrets.v | b64dec }}", "{{ 1 / 0 }}",
    "{{ range(10**9) | list }}", "{{ secrets.v ~ 'x' * 99999999 }}", "}}", "{%", "plain text ",
    "{{ secrets.v | format(1) }}", "{{ '%s %s' % (secrets.v,) }}", "{{ secrets.v.__len__() }}",
    "{% set x = secrets.v %}{{ x | join(x) }}", "{{ secrets | dictsort }}",
    "{{ secrets.v | pem_private_key }}", "{{ dict(a=secrets.v).b }}",
]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5), canaries)
def test_any_template_renders_or_fails_without_revealing_the_value(
    parts: list[str], canary: str
) -> None:
    template = "".join(parts)
    ctx = TemplateContext(secrets={"v": canary, "w": canary + "-second"})
    try:
        render_templates({"k": template}, ctx, limits=LIMITS)
    except DataError as exc:
        message = str(exc)
        assert canary not in message, (template, message)
        assert canary[6:] not in message, (template, message)
        assert "template 'k'" in message
