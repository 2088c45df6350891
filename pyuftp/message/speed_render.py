"""The renderer's speed-ups, part of :mod:`pyuftp.message.speed` (which re-exports them and
says what they promise): templates compiled to leaner Python, shared attribute groups written
out in place of macro calls, and a render call without Jinja2's per-call context set-up.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

# --- rendering ---------------------------------------------------------------------------------


#: ``rows(items, ops, filters) -> str | None``: a flat loop's text written another way (in
#: C), or None to let the generated Python write it (see :func:`_code_generator`).
RenderRows = Callable[[Any, tuple[Any, ...], tuple[Any, ...]], "str | None"]


def _no_rows(items: Any, ops: tuple[Any, ...], filters: tuple[Any, ...] = ()) -> str | None:
    return None


def fast_environment(base: type[jinja2.Environment],
                     rows: RenderRows = _no_rows) -> type[jinja2.Environment]:
    """A subclass of the plain Environment class ``base`` that compiles the same templates
    to leaner Python (see :func:`_code_generator`), offering ``rows`` to flat loops."""
    class Environment(base):  # type: ignore[valid-type, misc]
        code_generator_class = _code_generator()
        escape_str = staticmethod(_escape_str())
        render_rows = staticmethod(rows)

    return Environment


def _code_generator() -> type[Any]:
    """Jinja2's CodeGenerator with shortcuts for pyuftp's payloads.

    Rendering a 96-ISP FlexOffer spends most of its time in two calls per value:
    ``environment.getattr(isp, 'power')`` and ``escape(...)`` (a Python function since
    MarkupSafe 3). Payloads are plain dicts of checked values, so the generated code looks
    dict keys up inline, writes ints without escaping them (digits need none), escapes plain
    strs to plain strs, tests ``is none`` by identity, and writes a loop that only outputs
    its items' fields (an ISP list) as one list comprehension and any other loop into a list
    rather than yielding each piece; everything else takes Jinja2's ordinary path. Should
    Jinja2 stop calling these hooks, templates simply render the ordinary, slower way.
    """
    from jinja2.compiler import CodeGenerator

    class FastCodeGenerator(CodeGenerator):
        def visit_Getattr(self, node: Any, frame: Any) -> None:
            if self.environment.is_async:
                return super().visit_Getattr(node, frame)
            # An absent optional field reads as None, as with the plain Environment.getattr.
            self.write("(_o_.get(%r) if (_o_ := " % node.attr)
            self.visit(node.node, frame)
            self.write(").__class__ is dict else environment.getattr(_o_, %r))" % node.attr)
            return None

        def _plain_escape(self, frame: Any, finalize: Any) -> bool:
            return bool(frame.eval_ctx.autoescape and not frame.eval_ctx.volatile
                        and finalize.src is None)

        def _output_child_pre(self, node: Any, frame: Any, finalize: Any) -> None:
            if self._plain_escape(frame, finalize):
                self.write("(environment.escape_str(_v_) if (_v_ := ")
            else:
                super()._output_child_pre(node, frame, finalize)

        def _output_child_post(self, node: Any, frame: Any, finalize: Any) -> None:
            # A plain str is escaped to a plain str: the Markup that escape() wraps it in
            # costs a Python-level __new__ per value, and the output is joined to a str anyway.
            if self._plain_escape(frame, finalize):
                self.write(").__class__ is str else str(_v_) if _v_.__class__ is int"
                           " else escape(_v_))")
            else:
                super()._output_child_post(node, frame, finalize)

        def visit_For(self, node: Any, frame: Any) -> None:
            if self._flat_loop(node, frame):
                return None
            # Any other loop writes into a list, joined and yielded once after it: a
            # list.extend per run of output instead of a yield per value. The output is the
            # same strs in the same order. Only a plain loop outside any other buffer.
            if (frame.buffer is not None or self.environment.is_async or node.recursive
                    or frame.require_output_check):
                return super().visit_For(node, frame)
            name = self.temporary_identifier()
            self.writeline(f"{name} = []")
            frame.buffer = name
            try:
                super().visit_For(node, frame)
            finally:
                frame.buffer = None
            self.writeline(f"yield concat({name})")
            return None

        def _flat_loop(self, node: Any, frame: Any) -> bool:
            """Write a loop whose body only outputs its item's fields (with ``{% if %}``s
            around some: an ISP list) as one list comprehension, an item a ``concat`` of its
            pieces; False, writing nothing, for any other loop."""
            from jinja2 import nodes

            if (self.environment.is_async or node.recursive or node.test or node.else_
                    or frame.require_output_check or not isinstance(node.target, nodes.Name)):
                return False
            finalize = self._make_finalize()
            if not self._plain_escape(frame, finalize):
                return False
            target = node.target.name

            def flat(body: Any) -> bool:
                for item in body:
                    if isinstance(item, nodes.If):
                        if item.elif_ or item.else_ or not flat(item.body):
                            return False
                        inner = [item.test]
                    elif isinstance(item, nodes.Output):
                        inner = list(item.nodes)
                    else:
                        return False
                    for expr in inner:
                        for name in expr.find_all(nodes.Name):
                            if name.name != target or name.ctx != "load":
                                return False
                        if any(isinstance(n, (nodes.Call, nodes.Block)) for n in
                               expr.find_all((nodes.Call, nodes.Block))):
                            return False
                return True

            if not flat(node.body):
                return False
            loop_frame = frame.inner()
            loop_frame.loop_frame = True
            loop_frame.symbols.analyze_node(node, for_branch="body")
            if any(how[0] != "param" for how in loop_frame.symbols.loads.values()):
                return False  # a name from outside the loop (none qualify today)

            def pieces(body: Any) -> None:
                self.write("concat((")
                for item in body:
                    if isinstance(item, nodes.If):
                        self.write("(")
                        pieces(item.body)
                        self.write(" if ")
                        self.visit(item.test, loop_frame)
                        self.write(" else ''), ")
                        continue
                    for child in item.nodes:
                        if isinstance(child, nodes.TemplateData):
                            self.write(repr(str(child.as_const(loop_frame.eval_ctx))) + ", ")
                        else:
                            self._output_child_pre(child, loop_frame, finalize)
                            self.visit(child, loop_frame)
                            self._output_child_post(child, loop_frame, finalize)
                            self.write(", ")
                self.write("))")

            filters: list[str] = []  # the loop's filters, as the generated code names them

            def ops(body: Any) -> list[tuple[Any, ...]] | None:
                # The loop as data for environment.render_rows: constant text, a field's
                # value (as is, or through a filter), and a group written when a field is not
                # None; None if it is more.
                found: list[tuple[Any, ...]] = []
                for item in body:
                    if isinstance(item, nodes.If):
                        test = item.test
                        inner = ops(item.body)
                        if (inner is None or not isinstance(test, nodes.Not)
                                or not isinstance(test.node, nodes.Test)
                                or test.node.name != "none" or test.node.args
                                or test.node.kwargs or test.node.dyn_args
                                or test.node.dyn_kwargs
                                or not isinstance(test.node.node, nodes.Getattr)
                                or not isinstance(test.node.node.node, nodes.Name)):
                            return None
                        found.append(("g", test.node.node.attr, tuple(inner)))
                        continue
                    for child in item.nodes:
                        if isinstance(child, nodes.TemplateData):
                            found.append(("c", str(child.as_const(loop_frame.eval_ctx))))
                        elif (isinstance(child, nodes.Getattr)
                              and isinstance(child.node, nodes.Name)):
                            found.append(("f", child.attr))
                        elif self._plain_filter(child):
                            name = self.filters[child.name]
                            if name not in filters:
                                filters.append(name)
                            found.append(("x", child.node.attr, filters.index(name)))
                        else:
                            return None
                return found

            items = self.temporary_identifier()  # (no := in a comprehension's iterable)
            text = self.temporary_identifier()
            self.writeline(f"{items} = ", node)
            self.visit(node.iter, frame)
            as_data = ops(node.body)
            if as_data is not None:
                self.writeline(f"{text} = environment.render_rows({items}, {tuple(as_data)!r}, "
                               f"({''.join(name + ', ' for name in filters)}))")
                self.writeline(f"if {text} is None:")
                self.indent()
            self.writeline(f"{text} = concat([")
            pieces(node.body)
            self.write(" for ")
            self.visit(node.target, loop_frame)
            self.write(f" in {items}])")
            if as_data is not None:
                self.outdent()
            self.writeline(f"yield {text}" if frame.buffer is None
                           else f"{frame.buffer}.append({text})")
            return True

        def _plain_filter(self, node: Any) -> bool:
            """``{{ item.field|name }}``: a filter called with the field's value alone (no
            arguments, nor the context or environment Jinja2 may pass), as C can call it."""
            from jinja2 import nodes
            try:
                from jinja2.utils import _PassArg  # private: without it, Python writes
            except ImportError:  # pragma: no cover - another Jinja2
                return False

            if not isinstance(node, nodes.Filter):
                return False
            func = self.environment.filters.get(node.name)
            return (func is not None and _PassArg.from_obj(func) is None
                    and node.name in self.filters
                    and isinstance(node.node, nodes.Getattr)
                    and isinstance(node.node.node, nodes.Name)
                    and not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs))

        def visit_Test(self, node: Any, frame: Any) -> None:
            # `x is none` / `is not none` guard every optional attribute: a plain identity
            # test rather than a call of Jinja2's test function.
            if node.name == "none" and not (node.args or node.kwargs or node.dyn_args
                                            or node.dyn_kwargs):
                self.write("(")
                self.visit(node.node, frame)
                self.write(" is None)")
            else:
                super().visit_Test(node, frame)

    return FastCodeGenerator


def _escape_str() -> Callable[[str], str]:
    """``str -> str`` escaping for attribute values (``&<>"'``), as MarkupSafe does it."""
    try:
        # The C speedup that markupsafe.escape() itself calls: private, hence fenced here.
        from markupsafe import _escape_inner  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # pragma: no cover - another MarkupSafe: the public way, a bit slower
        from markupsafe import escape

        def plain(text: str) -> str:
            return str(escape(text))
        return plain
    return _escape_inner  # type: ignore[no-any-return, unused-ignore]


PARTS = "_parts.xml"
_IMPORT = re.compile(r'{%-?\s*import\s+"_parts\.xml"\s+as\s+(\w+)\s*-?%}\n?')
_MACRO = re.compile(r"{%-?\s*macro\s+(\w+)\((\w+)\)\s*-%}(.*?){%-\s*endmacro\s*-?%}", re.S)


def inlining_loader(inner: jinja2.BaseLoader) -> jinja2.BaseLoader:
    """A loader that gives ``inner``'s templates with the calls of the shared attribute
    groups in ``_parts.xml`` written out in place: a macro call costs more than the rest of
    a small message's render. The templates themselves keep the calls, and mean the same
    either way."""
    import jinja2

    class Loader(jinja2.BaseLoader):
        def get_source(self, environment: jinja2.Environment,
                       template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
            source, filename, uptodate = inner.get_source(environment, template)
            if template != PARTS:
                try:
                    parts = inner.get_source(environment, PARTS)[0]
                except jinja2.TemplateNotFound:
                    return source, filename, uptodate
                source = inline_parts(source, parts)
            return source, filename, uptodate

        def list_templates(self) -> list[str]:
            return inner.list_templates()

    return Loader()


def inline_parts(source: str, parts: str) -> str:
    """``{{ parts.response(m) }}`` -> the body of ``_parts.xml``'s ``response`` macro, with the
    macros it calls written out too; calls that don't pass the macro's own parameter name
    (none do today) are left alone, and so is the import they need."""
    bodies = {name: (param, body.strip()) for name, param, body in _MACRO.findall(parts)}

    def expand(text: str, prefix: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, arg = match.group(1), match.group(2)
            if name not in bodies or bodies[name][0] != arg:
                return match.group(0)
            return expand(bodies[name][1], "")
        return re.sub(r"{{\s*" + re.escape(prefix) + r"(\w+)\((\w+)\)\s*}}", one, text)

    imported = _IMPORT.search(source)
    if not imported or not bodies:
        return source
    alias = imported.group(1)
    inlined = _IMPORT.sub("", expand(source, alias + "."))
    calls = re.compile(r"{{\s*(%s\.\w+|%s)\(" % (re.escape(alias), "|".join(bodies)))
    if calls.search(inlined):
        return source  # a call stayed a call: keep the template as it is, import and all
    return inlined


def render(template: jinja2.Template, payload: Mapping[str, Any]) -> str:
    """What ``template.render(m=payload)`` does, less merging Jinja2's globals (range, dict,
    ...) into a new context dict on every call: no template uses them, and it was half the
    time of rendering a small message."""
    context = template.new_context({"m": payload}, shared=True)
    return template.environment.concat(template.root_render_func(context))
