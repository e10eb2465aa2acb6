"""Go template → Jinja2: the plain lookups translate, everything else is refused."""

from __future__ import annotations

import pytest

from vaultbridge.migrate.templates import translate
from vaultbridge.secrets.templates import TemplateContext, render_templates


@pytest.mark.parametrize(
    ("go", "jinja"),
    [
        ("plain text", "plain text"),
        ("{{ .Secrets.user }}", '{{ secrets["user"] }}'),
        ('{{get .Secrets "pass-word"}}', '{{ secrets["pass-word"] }}'),
        ('{{ index .Secrets "a.b" }}', '{{ secrets["a.b"] }}'),
        ("{{- .Labels.team -}}", '{{- labels["team"] -}}'),
        ('{{ get .Annotations "x" }}\n', '{{ annotations["x"] }}\n'),
    ],
)
def test_translated(go: str, jinja: str) -> None:
    assert translate(go).text == jinja


@pytest.mark.parametrize(
    "go",
    [
        "{{ range $k, $v := .Secrets }}{{ $k }}{{ end }}",
        "{{ .Secrets.user | b64enc }}",
        "{{ if .Secrets.x }}y{{ end }}",
        '{{ template "helper" . }}',
        "{% raw %} {{ .Secrets.a }}",
        "{# c #}",
        "dangling }} brace",
    ],
)
def test_refused(go: str) -> None:
    result = translate(go)
    assert result.text is None
    assert result.problem


def test_translation_renders_like_vso_would() -> None:
    text = translate('pg://{{ get .Secrets "user" }}:{{ .Secrets.password }}@db/{{ .Labels.db }}')
    assert text.text is not None
    out = render_templates(
        {"url": text.text},
        TemplateContext(secrets={"user": "u", "password": "p"}, labels={"db": "app"}),
    )
    assert out == {"url": b"pg://u:p@db/app"}
