//! Template rendering over a group, and value splitting.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::error::{Error, Result, SaysItsFix};

/// Fuel of one render: each instruction costs one, and minijinja also charges the data a
/// template makes and the items it walks, including the engine's own walks when it prints,
/// compares or hashes a list (the vendored patch, vendor/README.md), so a lazily repeated or
/// self-sharing list cannot make a short template run for ever or exhaust memory.
const TEMPLATE_FUEL: u64 = 100_000;

/// Longest template `render` accepts, in bytes; a longer one is a `Template` error.
///
/// # Examples
/// ```
/// use store::kv::MAX_TEMPLATE_BYTES;
/// use store::{ErrorKind, Kv, Store};
/// let store = Store::in_memory()?;
/// let err = store.render(&"x".repeat(MAX_TEMPLATE_BYTES + 1), "g").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Template);
/// # Ok::<(), store::Error>(())
/// ```
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Templates up to this size render on the caller's thread.
const INLINE_TEMPLATE_BYTES: usize = 512;

/// Stack of the thread that renders larger templates. minijinja parses and evaluates operator
/// and filter chains (`1 + 1 + …`, `x|lower|lower…`, `---1`) recursively, one stack frame per
/// link, and nothing bounds a chain but the template's length: a 12 KB chain overflows a
/// default 2 MiB thread stack, which aborts the process. Measured, 64 Ki links (the most a
/// 64 KiB template can hold) need well under 256 MiB in debug builds. The stack is only
/// reserved address space; pages are committed as they are touched.
const RENDER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Renders `template` with each entry as a top-level variable, plus `entries` (the map) and
/// `group`. No auto-escaping: values are inserted verbatim.
pub(crate) fn render(
    op: &'static str,
    template: &str,
    group: &str,
    entries: &BTreeMap<String, String>,
) -> Result<String> {
    if template.len() > MAX_TEMPLATE_BYTES {
        let detail = format!(
            "the template is {} bytes, over the limit of {MAX_TEMPLATE_BYTES}; shorten it (move \
             fixed text out of the template) or split it into several renders",
            template.len()
        );
        return Err(Error::Template {
            op,
            source: minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, detail)
                .with_source(SaysItsFix),
        });
    }
    if template.len() <= INLINE_TEMPLATE_BYTES {
        // A panic inside minijinja (none is known since the vendored patch fixed
        // `loop.cycle()` without values and two integer overflows) is a template error for the
        // caller, as from the render thread below.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            render_here(op, template, group, entries)
        }))
        .unwrap_or_else(|panic| Err(engine_failed(op, panic.as_ref())));
    }
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("store-render".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(scope, || render_here(op, template, group, entries))
            .map_err(|source| Error::Io {
                op,
                path: None,
                source,
            })?;
        thread
            .join()
            .unwrap_or_else(|panic| Err(engine_failed(op, panic.as_ref())))
    })
}

/// What templates find under the name `namespace`: a function that always fails (see
/// `render_here`), whatever its arguments.
#[derive(Debug)]
struct NoNamespace;

impl minijinja::value::Object for NoNamespace {
    fn call(
        self: &std::sync::Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        _args: &[Value],
    ) -> std::result::Result<Value, minijinja::Error> {
        Err(
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, NO_NAMESPACE)
                .with_source(SaysItsFix),
        )
    }
}

/// Why templates cannot call `namespace()` (see `render_here`).
const NO_NAMESPACE: &str = "namespace() is not available in store templates (a namespace \
     assigned into itself would crash the template engine); compute sums and counts with filters \
     instead, e.g. {{ entries|dictsort|map(attribute=1)|map('int')|sum }}";

/// The error for a template the engine itself failed on (it panicked), with the panic's
/// message when it has one.
fn engine_failed(op: &'static str, panic: &(dyn std::any::Any + Send)) -> Error {
    let cause = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    let detail = match cause {
        Some(cause) => {
            format!("the template engine failed on this template ({cause}); simplify it")
        }
        None => "the template engine failed on this template; simplify it".to_string(),
    };
    Error::Template {
        op,
        source: minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, detail).with_source(SaysItsFix),
    }
}

fn render_here(
    op: &'static str,
    template: &str,
    group: &str,
    entries: &BTreeMap<String, String>,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Undefined renders "" (SPEC §3.7) however it is reached: `{{ missing.attr }}` and
    // `{{ entries.nope.x }}` too, not only `{{ missing }}` (minijinja's default fails there).
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // A namespace is minijinja's one mutable value, so the only way to build a value that
    // holds itself (`{% set ns.x = ns %}`); printing, comparing or filtering one recurses
    // without end in minijinja 3.1, a stack overflow that aborts the process (no panic to
    // catch). Templates over a group rarely need one: sums and counts have filters.
    env.add_global("namespace", Value::from_object(NoNamespace));
    // Keys named `entries` or `group` are reachable only through `entries[...]`, so the two
    // reserved names always mean the same thing.
    let mut context: BTreeMap<&str, Value> = entries
        .iter()
        .filter(|(k, _)| k.as_str() != "entries" && k.as_str() != "group")
        .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
        .collect();
    context.insert(
        "entries",
        Value::from_pairs(entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    context.insert("group", Value::from(group));
    env.render_str(template, Value::from_pairs(context))
        .map_err(|source| Error::Template { op, source })
}

/// `value` split on `sep`; an empty separator yields one item per character.
pub(crate) fn split(value: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        value.chars().map(String::from).collect()
    } else {
        value.split(sep).map(str::to_string).collect()
    }
}

/// `value` split on Unicode whitespace, empty pieces dropped.
pub(crate) fn fields(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_fields_edge_cases() {
        assert_eq!(split("alpha,beta,gamma", ","), ["alpha", "beta", "gamma"]);
        assert_eq!(split("ab", ""), ["a", "b"]);
        assert_eq!(split("", ","), [""]);
        assert!(split("", "").is_empty());
        assert_eq!(fields("alpha beta\tgamma\n"), ["alpha", "beta", "gamma"]);
        assert_eq!(fields(" a\t b  "), ["a", "b"]);
        assert!(fields("   ").is_empty());
    }

    #[test]
    fn render_reserved_names_and_fuel() {
        let mut e = BTreeMap::new();
        e.insert("group".to_string(), "shadowed".to_string());
        e.insert("my-key".to_string(), "dash".to_string());
        let out = render(
            "t",
            "{{ group }}|{{ entries['group'] }}|{{ entries['my-key'] }}",
            "g",
            &e,
        )
        .unwrap();
        assert_eq!(out, "g|shadowed|dash");
        let err = render("t", "{% for i in range(100000) %}{{ i }}{% endfor %}", "g", &e).unwrap_err();
        assert!(matches!(err, Error::Template { .. }));
        // The fix offered is about the work done, not the syntax (which is fine).
        assert!(err.to_string().contains("too much work"), "{err}");
        let err = render("t", "{{ 1 + }}", "g", &e).unwrap_err();
        assert!(err.to_string().ends_with("; fix the template"), "{err}");
    }

    /// No template is known to make the engine panic any more, so the message for one is
    /// checked here: it carries the panic's text and says its own fix, without minijinja's
    /// hint for invalid operations.
    #[test]
    fn an_engine_panic_is_a_template_error_carrying_its_text() {
        let err = engine_failed("Store::render", &"attempt to divide by zero");
        assert!(matches!(err, Error::Template { .. }));
        let text = err.to_string();
        assert!(
            text.contains("(attempt to divide by zero); simplify it"),
            "{text}"
        );
        assert!(!text.contains("a division by zero"), "{text}");
        let err = engine_failed("Store::render", &String::from("index out of bounds"));
        assert!(err.to_string().contains("(index out of bounds)"), "{err}");
        let err = engine_failed("Store::render", &42_u8);
        assert!(
            err.to_string().contains("failed on this template; simplify it"),
            "{err}"
        );
    }

    #[test]
    fn long_operator_chains_render_without_overflowing_the_stack() {
        let e = BTreeMap::new();
        let chain = format!("{{{{ 'a'{} }}}}", "|lower".repeat(10_000));
        assert_eq!(render("t", &chain, "g", &e).unwrap(), "a");
        let too_long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(
            render("t", &too_long, "g", &e),
            Err(Error::Template { .. })
        ));
    }
}
