"""The template sandbox: escapes refused, loop/size/time bombs stopped quickly, secrets unseen."""

from __future__ import annotations

import pytest

from vaultbridge.secrets.errors import TemplateError
from vaultbridge.secrets.sandbox import Budget, BudgetExceeded, RenderLimits, estimate_text_size
from vaultbridge.secrets.templates import TemplateContext, render_templates

CANARY = "canary-0cc175b9c0f1b6a8-secret"
CONTEXT = TemplateContext(
    secrets={"password": CANARY, "hosts": ["a", "b"], "big": "x" * 1000},
    labels={"app": "web"},
)


def fails(
    text: str, limits: RenderLimits | None = None, *, by_clock: bool = False
) -> TemplateError:
    """Render `text`, expect a TemplateError, and no secret in the message.

    Unless `by_clock`, the error must come from a counted limit (operations, sizes, items),
    never from the wall-clock guard: what stops a template may not depend on how busy the
    machine is.
    """
    with pytest.raises(TemplateError) as info:
        render_templates({"out": text}, CONTEXT, limits=limits or RenderLimits())
    assert CANARY not in str(info.value)
    assert ("to render" in info.value.detail) == by_clock, info.value.detail
    return info.value


# -- escapes -----------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ ''['__cla' ~ 'ss__'] }}",
    "{{ ()|attr('__class__') }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__globals__ }}",
    "{{ dict.mro() }}",
    "{{ namespace().__class__ }}",
    "{{ secrets.items.__self__ }}",
    "{{ ''.join.__self__.__class__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(secrets) }}",
    "{{ '{password.__class__}'.format_map(secrets) }}",
    "{% for x in secrets.hosts %}{{ loop.__class__ }}{% endfor %}",
    "{{ (secrets.hosts|map('upper')).gi_frame.f_globals }}",
    "{% macro m() %}{{ caller.__globals__ }}{% endmacro %}{% call m() %}x{% endcall %}",
    "{{ secrets.password.__doc__ }}",
    "{{ ''.__class__ | default('fallback') }}",
    "{% set x = secrets.__class__ %}ok",
    "{{ environ }}{{ os }}{{ __builtins__ }}",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_sandbox_escapes_are_refused(text: str) -> None:
    error = fails(text)
    # Refused outright, or the name/attribute simply is not there to be reached.
    assert any(
        reason in error.detail for reason in ("not allowed", "undefined", "has no attribute")
    )


def test_unsafe_access_fails_instead_of_rendering_empty() -> None:
    # The stock sandbox returns an undefined value that `default` silently replaces.
    error = fails("{{ ''.__class__ | default('fallback') }}")
    assert "access to attribute '__class__'" in error.detail


@pytest.mark.parametrize(
    "text",
    [
        "{{ secrets.hosts.append('c') }}",
        "{{ secrets.update({'a': 1}) }}",
        "{{ secrets.pop('password') }}",
        "{{ secrets.clear() }}",
        "{{ secrets.setdefault('a', 1) }}",
        "{% set ns = namespace(l=[]) %}{{ ns.l.extend([1]) }}",
    ],
)
def test_mutation_of_values_is_refused(text: str) -> None:
    fails(text)


@pytest.mark.parametrize(
    "method", ["ljust(10**8)", "rjust(10**8)", "zfill(10**8)", "center(10**8)", "expandtabs(10**8)"]
)
def test_size_amplifying_str_methods_are_not_exposed(method: str) -> None:
    error = fails("{{ 'x'." + method + " }}")
    assert "not allowed" in error.detail


def test_int_methods_that_allocate_are_not_exposed() -> None:
    fails("{{ (1).to_bytes(100000000, 'big') }}")


@pytest.mark.parametrize("name", ["random", "urlize", "xmlattr"])
def test_non_deterministic_and_html_filters_are_absent(name: str) -> None:
    # `random` would change the Secret (and its HMAC) on every refresh.
    assert "No filter named" in fails("{{ [1, 2] | " + name + " }}").detail


# -- loop and recursion bombs ------------------------------------------------------------


def test_nested_range_loops_fail_fast() -> None:
    error = fails(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    assert "operations" in error.detail
    assert error.line == 1


def test_filtered_loops_count_every_element() -> None:
    fails(
        "{% for i in range(100000) %}{% for j in range(100000) if false %}{% endfor %}{% endfor %}",
    )


def test_loop_over_a_large_string_counts_characters() -> None:
    text = "{% set s = 'x' * 1000000 %}{% for c in s %}{% endfor %}"
    fails(text)


def test_exponential_macro_recursion_is_stopped() -> None:
    text = (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}"
    )
    fails(text)


def test_endless_macro_recursion_is_stopped() -> None:
    assert "recursion" in fails("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").detail


def test_recursive_loop_bomb_is_stopped() -> None:
    fails(
        "{% for x in [1] recursive %}{{ loop([1, 2]) }}{{ loop([1, 2]) }}{% endfor %}",
    )


def test_self_including_source_template_is_stopped() -> None:
    with pytest.raises(TemplateError):
        render_templates(
            {"out": "{% include 'loop' %}"},
            CONTEXT,
            source_templates={"loop": "{% include 'loop' %}{% include 'loop' %}"},
        )


def test_range_is_bounded() -> None:
    assert "100000" in fails("{{ range(100001) | length }}").detail
    assert render_templates({"o": "{{ range(100000) | length }}"}, CONTEXT) == {"o": b"100000"}


# -- size bombs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'a' * 1000000000 }}",
        "{{ [1] * 1000000000 }}",
        "{{ 1000000000 * 'a' }}",
        "{{ 2 ** 100000 }}",
        "{{ 9 ** (9 ** 9) }}",
        "{% set x = 2 ** 4000 %}{{ x * x * x }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}"
        "{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set s %}{{ ns.s }}{{ ns.s }}"
        "{% endset %}{% set ns.s = s %}{% endfor %}",
        "{% set ns = namespace(s='aaaaaaaaaa') %}{% for i in range(10) %}"
        "{% set ns.s = ns.s | replace('a', ns.s) %}{% endfor %}",
        "{% set ns = namespace(s='aaaaaaaaaa') %}{% for i in range(10) %}"
        "{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}",
        "{{ 'abc' | replace('', 'x' * 1000000) }}",
        "{{ ('{0}' * 100).format('x' * 100000) }}",
        "{{ '{:999999999}'.format(1) }}",
        "{{ ('{0:99999999}' | attr('format'))(1) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d' % (100, 1) }}",
        "{{ ('%s' * 1000) % ((secrets.big * 1000,) * 1000) }}",
        "{{ '%s' | format(secrets.big * 1000) * 2 }}",
        "{{ ([secrets.password] * 100000) | join(',') }}",
        "{{ ([secrets.password] * 100000) | join }}",
        "{{ ','.join([secrets.big * 100] * 100) }}",
        "{{ ([secrets.password] * 100000) | upper }}",
        "{{ ([secrets.password] * 100000) | tojson }}",
        "{{ ([secrets.password] * 100000) | toyaml }}",
        "{{ ([[secrets.big] * 1000] * 1000) | string }}",
        "{{ ([secrets.password] * 100000) }}",
        "{{ secrets.big ~ ([secrets.big] * 100000) }}",
        "{{ 'x' | center(1000000000) }}",
        "{{ 'a\nb' | indent(100000000) }}",
        "{{ ('a\n' * 100000) | indent('x' * 100) }}",
        "{{ ('a b ' * 1000) | wordwrap(1, wrapstring='x' * 100000) }}",
        "{{ [1] | batch(1000000000, 'x') | list }}",
        "{{ [1] | slice(1000000000) | list }}",
        "{{ ([[1] * 100000] * 100000) | sum(start=[]) }}",
    ],
)
def test_size_bombs_are_refused_before_allocation(text: str) -> None:
    error = fails(text)
    # Refused by a size check, not by some incidental error further down.
    assert any(why in error.detail for why in ("would exceed", "not allowed", "numbers only"))


def test_many_medium_values_exhaust_the_work_budget() -> None:
    # Each step is small, but together they would churn through gigabytes.
    text = (
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{% set t = s | upper %}{% endfor %}"
    )
    assert "in total" in fails(text).detail


def test_output_size_is_capped_per_template() -> None:
    limits = RenderLimits(max_output_bytes=1000)
    error = fails("{% for i in range(100) %}{{ 'x' * 20 }}{% endfor %}", limits)
    assert "larger than 1000 bytes" in error.detail
    ok = render_templates({"o": "{{ 'x' * 1000 }}"}, CONTEXT, limits=limits)
    assert len(ok["o"]) == 1000


def test_output_cap_counts_utf8_bytes() -> None:
    limits = RenderLimits(max_output_bytes=10)
    fails("{{ 'é' * 6 }}", limits)  # 6 characters, 12 bytes


def test_total_output_is_capped() -> None:
    limits = RenderLimits(max_total_output_bytes=1500)
    with pytest.raises(TemplateError, match="together") as info:
        render_templates({"a": "{{ 'x' * 1000 }}", "b": "{{ 'y' * 1000 }}"}, CONTEXT, limits=limits)
    assert info.value.template == "b"


def test_template_source_size_is_capped() -> None:
    fails("x" * 65_537)


def test_wall_clock_budget_is_the_last_resort() -> None:
    # With the counting limits lifted, only the clock stops this template.
    limits = RenderLimits(
        max_operations=10**12, max_work=10**15, timeout_seconds=0.3, max_items=10**6
    )
    text = "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"
    error = fails(text, limits, by_clock=True)
    assert "longer than 0.3s" in error.detail


def test_budget_is_shared_by_all_templates_of_a_call() -> None:
    limits = RenderLimits(max_operations=5000)
    loop = "{% for i in range(2000) %}{% endfor %}"
    render_templates({"a": loop}, CONTEXT, limits=limits)
    with pytest.raises(TemplateError, match="operations") as info:
        render_templates({"a": loop, "b": loop, "c": loop}, CONTEXT, limits=limits)
    assert info.value.template in {"b", "c"}


def test_each_call_gets_a_fresh_budget() -> None:
    limits = RenderLimits(max_operations=5000)
    for _ in range(5):
        render_templates({"a": "{% for i in range(2000) %}{% endfor %}"}, CONTEXT, limits=limits)


def test_ordinary_heavy_template_still_renders() -> None:
    secrets = {f"key_{i}": f"value-{i}" * 10 for i in range(500)}
    context = TemplateContext(secrets=secrets)
    text = "{% for k, v in secrets | dictsort %}{{ k }}={{ v | b64enc }}\n{% endfor %}"
    out = render_templates({"env": text}, context)["env"]
    assert out.count(b"\n") == 500


# -- the budget primitives ---------------------------------------------------------------


def test_estimate_text_size_bounds_str_of_containers() -> None:
    for value in (
        "abc",
        [1, "two", None, 3.5],
        {"a": [1, 2, {"b": "c"}], "d": True},
        ("x" * 50, ["y" * 20]),
        2**200,
    ):
        assert estimate_text_size(value, 10**9) >= len(str(value))


class _CountedList(list[object]):
    """A list that counts how often it is walked."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountedList.walks += 1
        return super().__iter__()


def test_estimate_text_size_stops_early_on_huge_values() -> None:
    inner = _CountedList(["x" * 1000] * 1000)
    huge = _CountedList([inner] * 1000)  # str() would be a gigabyte
    _CountedList.walks = 0
    assert estimate_text_size(huge, 10_000) > 10_000
    # The outer list and at most one inner one: the walk stops at the limit, not at the end.
    assert _CountedList.walks <= 2


def test_budget_counts_operations_and_work() -> None:
    budget = Budget(RenderLimits(max_operations=3, max_work=10))
    for _ in range(3):
        budget.tick()
    with pytest.raises(BudgetExceeded):
        budget.tick()
    budget = Budget(RenderLimits(max_work=10))
    budget.account("12345")
    budget.account([1, 2, 3, 4, 5])
    with pytest.raises(BudgetExceeded, match="in total"):
        budget.account("x")


# -- slow comparisons of many large values ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # Two distinct, equal megabyte strings: every comparison between them is a full scan.
        "{% set a = secrets.big * 1000 %}{% set b = secrets.big * 1000 %}"
        "{{ ([a, b] * 50000) | sort | length }}",
        "{% set a = secrets.big * 1000 %}{% set b = secrets.big * 1000 %}"
        "{% set l = [a, b] + [a, b] %}{{ (l + l + l + l) | length }}",
        "{% set a = secrets.big * 1000 %}{% set b = secrets.big * 1000 %}"
        "{{ [a, b, a, b, a, b, a, b] | unique | list | length }}",
        "{% set a = secrets.big * 500 %}{{ [a, a, a] | max | length }}",
    ],
)
def test_lists_of_large_values_are_refused(text: str) -> None:
    assert "would exceed" in fails(text).detail


def test_dict_views_count_their_content() -> None:
    text = "{% set a = secrets.big * 1000 %}{{ {'x': a, 'y': a}.values() }}"
    assert "would exceed" in fails(text).detail


def test_small_lists_of_numbers_stay_usable() -> None:
    out = render_templates(
        {"o": "{{ range(100000) | list | sort | length }} {{ ([0] * 100000) | length }}"},
        CONTEXT,
    )
    assert out == {"o": b"100000 100000"}
