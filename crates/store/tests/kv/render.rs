//! SPEC §3.7: `render` (minijinja over a group), `get_split` and `get_fields`.

use store::{Error, ErrorKind, Kv};

use crate::common::{both, expect_not_found};

#[test]
fn split_examples_from_the_spec() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "csv", "alpha,beta,gamma").unwrap();
        store.set("g", "ab", "ab").unwrap();
        store.set("g", "empty", "").unwrap();
        store.set("g", "multi", "a::b::::c").unwrap();
        store.set("g", "emoji", "日😀é").unwrap();
        assert_eq!(
            store.get_split("g", "csv", ",").unwrap(),
            ["alpha", "beta", "gamma"],
            "{kind}"
        );
        assert_eq!(store.get_split("g", "ab", "").unwrap(), ["a", "b"], "{kind}");
        assert_eq!(store.get_split("g", "empty", ",").unwrap(), [""], "{kind}");
        assert!(store.get_split("g", "empty", "").unwrap().is_empty(), "{kind}");
        assert_eq!(
            store.get_split("g", "multi", "::").unwrap(),
            ["a", "b", "", "c"],
            "{kind}"
        );
        assert_eq!(
            store.get_split("g", "csv", ";").unwrap(),
            ["alpha,beta,gamma"],
            "{kind}"
        );
        assert_eq!(
            store.get_split("g", "emoji", "").unwrap(),
            ["日", "😀", "é"],
            "{kind}"
        );
        expect_not_found(store.get_split("g", "missing", ","), "g", "missing");
    }
}

#[test]
fn fields_examples_from_the_spec() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "three", "alpha beta\tgamma\n").unwrap();
        store.set("g", "two", " a\t b  ").unwrap();
        store.set("g", "blank", "  \t\n ").unwrap();
        store.set("g", "unicode", "a\u{3000}b\u{a0}c").unwrap();
        assert_eq!(
            store.get_fields("g", "three").unwrap(),
            ["alpha", "beta", "gamma"],
            "{kind}"
        );
        assert_eq!(store.get_fields("g", "two").unwrap(), ["a", "b"], "{kind}");
        assert!(store.get_fields("g", "blank").unwrap().is_empty(), "{kind}");
        assert_eq!(
            store.get_fields("g", "unicode").unwrap(),
            ["a", "b", "c"],
            "{kind}"
        );
        expect_not_found(store.get_fields("g", "missing"), "g", "missing");
    }
}

#[test]
fn render_substitutes_entries_of_the_group() {
    for (kind, store, _, _dir) in both() {
        store.set("config", "pool", "eu-west").unwrap();
        store.set("config", "wallet", "w-123").unwrap();
        store.set("other", "pool", "not-this-one").unwrap();
        let out = store
            .render(r#"{"pool":"{{ pool }}","wallet":"{{ wallet }}"}"#, "config")
            .unwrap();
        assert_eq!(out, r#"{"pool":"eu-west","wallet":"w-123"}"#, "{kind}");
        assert_eq!(store.render("{{ group }}", "config").unwrap(), "config", "{kind}");
        assert_eq!(
            store
                .render(
                    "{% for k, v in entries|items %}{{ k }}={{ v }};{% endfor %}",
                    "config"
                )
                .unwrap(),
            "pool=eu-west;wallet=w-123;",
            "{kind}"
        );
    }
}

#[test]
fn render_of_a_missing_group_returns_the_static_text() {
    for (kind, store, _, _dir) in both() {
        assert_eq!(
            store.render("static text", "missing").unwrap(),
            "static text",
            "{kind}"
        );
        assert_eq!(
            store.render("a{{ pool }}b", "missing").unwrap(),
            "ab",
            "{kind}: undefined → \"\""
        );
        assert_eq!(store.render("", "missing").unwrap(), "", "{kind}");
    }
}

#[test]
fn undefined_variables_render_as_empty_strings() {
    let (_, store, _, _dir) = both().remove(1);
    store.set("user", "name", "Alice").unwrap();
    assert_eq!(
        store.render("Hello {{ name }}{{ missing }}!", "user").unwrap(),
        "Hello Alice!"
    );
    assert_eq!(store.render("[{{ entries['nope'] }}]", "user").unwrap(), "[]");
    // Lookups on an undefined value are undefined too, not an error (h131).
    assert_eq!(
        store
            .render(
                "[{{ missing.attr }}{{ entries.nope.x }}{{ missing['k'].y }}]",
                "user"
            )
            .unwrap(),
        "[]"
    );
}

fn expect_template_error(result: store::Result<String>, what: &str) {
    match result {
        Err(err @ Error::Template { .. }) => {
            assert_eq!(err.kind(), ErrorKind::Template);
            assert_eq!(err.op(), "Store::render");
            assert!(
                std::error::Error::source(&err).is_some(),
                "{what}: minijinja error is the source"
            );
        }
        other => panic!("{what}: expected a Template error, got {other:?}"),
    }
}

#[test]
fn template_syntax_errors_are_template_errors() {
    for (_, store, _, _dir) in both() {
        store.set("config", "pool", "eu-west").unwrap();
        expect_template_error(store.render("{{ pool", "config"), "unclosed expression");
        expect_template_error(store.render("{% if %}", "config"), "bad tag");
        expect_template_error(store.render("{% for x in y %}", "config"), "unclosed block");
        expect_template_error(
            store.render("{{ pool", "missing"),
            "unclosed expression, missing group",
        );
    }
}

#[test]
fn template_runtime_errors_are_template_errors() {
    for (_, store, _, _dir) in both() {
        store.set("config", "pool", "eu-west").unwrap();
        expect_template_error(store.render("{{ nope() }}", "config"), "unknown function");
        expect_template_error(
            store.render("{{ pool | no_such_filter }}", "config"),
            "unknown filter",
        );
        expect_template_error(store.render("{% include 'other.txt' %}", "config"), "no loader");
        let division = store.render("{{ 1 / 0 }}", "config").unwrap_err();
        let message = division.to_string();
        expect_template_error(Err(division), "division by zero");
        assert!(message.contains("division by zero"), "{message}");
        assert!(
            !message.contains("shorten"),
            "the fix fits the failure: {message}"
        );
    }
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    for (_, store, _, _dir) in both() {
        store.set("g", "k", "v").unwrap();
        expect_template_error(
            store.render("{% for i in range(1000000) %}{% endfor %}", "g"),
            "one big loop",
        );
        expect_template_error(
            store.render(
                "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
                "g",
            ),
            "nested loops",
        );
        // A modest loop is fine.
        let out = store
            .render("{% for i in range(3) %}{{ i }}{% endfor %}", "g")
            .unwrap();
        assert_eq!(out, "012");
    }
}

#[test]
fn keys_named_entries_or_group_are_reachable_only_through_entries() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "group", "shadow-group").unwrap();
        store.set("g", "entries", "shadow-entries").unwrap();
        store.set("g", "my-key", "dash").unwrap();
        let out = store
            .render(
                "{{ group }}|{{ entries['group'] }}|{{ entries['entries'] }}|{{ entries['my-key'] }}|{{ entries.group }}",
                "g",
            )
            .unwrap();
        assert_eq!(out, "g|shadow-group|shadow-entries|dash|shadow-group", "{kind}");
        assert_eq!(store.render("{{ entries|length }}", "g").unwrap(), "3", "{kind}");
    }
}

#[test]
fn render_does_not_escape_html() {
    for (kind, store, _, _dir) in both() {
        let raw = "<b>&amp; \"quoted\" 'single'</b> & <script>";
        store.set("g", "html", raw).unwrap();
        assert_eq!(store.render("{{ html }}", "g").unwrap(), raw, "{kind}");
        assert_eq!(
            store.render("<p>{{ entries['html'] }}</p>", "g").unwrap(),
            format!("<p>{raw}</p>")
        );
    }
}

#[test]
fn render_reads_values_with_awkward_content_verbatim() {
    let (_, store, _, _dir) = both().remove(0);
    store.set("g", "inj", "{{ 1 + 1 }}").unwrap();
    store.set("g", "uni", "日本語 😀").unwrap();
    assert_eq!(
        store.render("{{ inj }}", "g").unwrap(),
        "{{ 1 + 1 }}",
        "values are not re-templated"
    );
    assert_eq!(store.render("{{ uni }}", "g").unwrap(), "日本語 😀");
}

/// Runs `test` (this binary's test of that name) in a child process, so a crash (a stack
/// overflow aborts the whole process) becomes a test failure instead of killing the run. The
/// child sees `KV_TEST_CHILD` set and does the real work.
fn in_child_process(test: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KV_TEST_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child process failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran the test"
    );
}

#[test]
fn long_expression_chains_are_a_template_error_or_render_not_a_crash() {
    if std::env::var_os("KV_TEST_CHILD").is_none() {
        return in_child_process("render::long_expression_chains_are_a_template_error_or_render_not_a_crash");
    }
    let (_, store, _, _dir) = both().remove(1);
    store.set("g", "k", "v").unwrap();
    for template in [
        format!("{{{{ 1{} }}}}", " + 1".repeat(20_000)),   // 80 KB
        format!("{{{{ k{} }}}}", "|lower".repeat(10_000)), // 60 KB
        format!("{{{{ {}true }}}}", "not ".repeat(10_000)),
    ] {
        match store.render(&template, "g") {
            Ok(_) | Err(Error::Template { .. }) => {}
            Err(other) => panic!("unexpected error kind: {other}"),
        }
    }
}

#[test]
fn deeply_nested_templates_are_template_errors() {
    let (_, store, _, _dir) = both().remove(1);
    store.set("g", "k", "v").unwrap();
    for template in [
        format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{{{{ {}1{} }}}}", "[".repeat(10_000), "]".repeat(10_000)),
        format!(
            "{}x{}",
            "{% if true %}".repeat(10_000),
            "{% endif %}".repeat(10_000)
        ),
    ] {
        expect_template_error(store.render(&template, "g"), "deep nesting");
    }
    expect_template_error(
        store.render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "g"),
        "unbounded recursion",
    );
}

/// Templates minijinja 3.1.0 panicked on (h126, h165) are ordinary template errors, from the
/// engine itself (the vendored patch), not caught panics: `loop.cycle()` without values divided
/// by zero, and a slice step or a `range` step of `i64::MIN` or bounds far apart overflowed
/// (debug builds). Caught panics printed "panicked at" through the process's panic hook, and a
/// program built with `panic = "abort"` would have died.
#[test]
fn templates_the_engine_panicked_on_are_plain_template_errors_or_render() {
    let store = store::Store::in_memory().unwrap();
    // The hook is the process's: record panics on this test's thread and on render threads
    // (a template over 512 bytes renders on one), pass every other one on.
    let previous_hook = std::sync::Arc::new(std::panic::take_hook());
    let panicked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, forward) = (panicked.clone(), previous_hook.clone());
    let this_test = std::thread::current().name().map(str::to_string);
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        if thread.name() == Some("store-render") || thread.name() == this_test.as_deref() {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        forward(info);
    }));
    let cycle = "{% for i in [1] %}{{ loop.cycle() }}{% endfor %}";
    let long_cycle = format!("{cycle}{}", " ".repeat(1_000));
    let mut results = Vec::new();
    for template in [cycle, long_cycle.as_str()] {
        results.push(store.render(template, "g"));
    }
    for template in [
        "{{ [1, 2, 3][::-9223372036854775808] }}|{{ 'abc'[::-9223372036854775808] }}|{{ (1, 2, 3)[::-9223372036854775808] }}",
        "{{ range(9223372036854775807, -9223372036854775808, -9223372036854775808)|list }}",
        "{{ range(9223372036854775807, -9223372036854775808, -4611686018427387904)|list }}",
        "{{ range(10, 0, -3)|list }}",
    ] {
        results.push(store.render(template, "g"));
    }
    let _ = std::panic::take_hook(); // drops the closure holding the other clone
    match std::sync::Arc::try_unwrap(previous_hook) {
        Ok(hook) => std::panic::set_hook(hook),
        Err(_) => unreachable!("the only other clone was dropped with the hook"),
    }
    assert!(!panicked.load(std::sync::atomic::Ordering::SeqCst), "{results:?}");
    for cycle in &results[..2] {
        let err = cycle.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template, "{err}");
        assert!(
            err.to_string().contains("loop.cycle() needs at least one value"),
            "{err}"
        );
    }
    let rendered: Vec<&str> = results[2..]
        .iter()
        .map(|r| r.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(
        rendered,
        [
            "[3]|c|(3,)",
            "[9223372036854775807, -1]",
            "[9223372036854775807, 4611686018427387903, -1, -4611686018427387905]",
            "[10, 7, 4, 1]",
        ]
    );
    assert_eq!(
        store
            .render(
                "{% for i in [1, 2, 3] %}{{ loop.cycle('a', 'b') }}{% endfor %}",
                "g"
            )
            .unwrap(),
        "aba"
    );
}

/// Errors the store raises itself say their own fix and no other (h151): a template over the
/// size limit says to shorten it (the engine's own failure: the unit test
/// `an_engine_panic_is_a_template_error_carrying_its_text`); minijinja's hint for its own
/// invalid operations ("a division by zero") was appended to both.
#[test]
fn a_template_refused_by_the_store_names_only_its_own_fix() {
    let store = store::Store::in_memory().unwrap();
    let too_long = " ".repeat(store::kv::MAX_TEMPLATE_BYTES + 1);
    let text = store.render(&too_long, "g").unwrap_err().to_string();
    assert!(text.contains("shorten it"), "{text}");
    assert!(!text.contains("division by zero"), "{text}");
    // A division by zero in the template itself keeps minijinja's hint.
    let text = store.render("{{ 1 // 0 }}", "g").unwrap_err().to_string();
    assert!(text.contains("division by zero"), "{text}");
}

/// A namespace that holds itself made minijinja recurse without end when printed, compared
/// or filtered: a stack overflow, which aborts the whole process (h165). `namespace()` is
/// refused instead, with a message naming the filters that do its usual job.
#[test]
fn namespace_is_refused_so_no_template_can_build_a_value_holding_itself() {
    let store = store::Store::in_memory().unwrap();
    store.set("g", "a", "1").unwrap();
    store.set("g", "b", "2").unwrap();
    let forms = [
        "{% set ns = namespace() %}{% set ns.x = ns %}{{ ns }}",
        "{% set ns = namespace() %}{% set ns.x = ns %}{{ ns|string|length }}",
        "{% set ns = namespace() %}{% set ns.x = [ns] %}{{ ns.x }}",
        "{% set ns = namespace() %}{% set ns.x = ns %}{{ [ns]|sort }}",
        "{% set ns = namespace(total=0) %}{% for k, v in entries|dictsort %}{% set ns.total = ns.total + v|int %}{% endfor %}{{ ns.total }}",
    ];
    for form in forms {
        let long = format!("{form}{}", " ".repeat(1_000)); // the render thread's path too
        for template in [form, long.as_str()] {
            let err = store.render(template, "g").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Template, "{form}: {err}");
            assert!(err.to_string().contains("namespace() is not available"), "{err}");
        }
    }
    let sum = "{{ entries|dictsort|map(attribute=1)|map('int')|sum }}";
    assert_eq!(
        store.render(sum, "g").unwrap(),
        "3",
        "the message's suggestion works"
    );
}

/// `{% set a = [a, a] %}` `levels` times over `seed`: a value printed or compared as
/// `2^levels` copies of `seed`, built from `levels` small lists that share each other.
fn doubled(name: &str, seed: &str, levels: usize) -> String {
    format!(
        "{{% set {name} = {seed} %}}{}",
        format!("{{% set {name} = [{name}, {name}] %}}").repeat(levels)
    )
}

fn expect_out_of_fuel(store: &store::Store, template: &str) {
    let err = match store.render(template, "g") {
        Ok(out) => panic!("{template}: rendered {} bytes", out.len()),
        Err(err) => err,
    };
    assert_eq!(err.kind(), ErrorKind::Template, "{template}: {err}");
    assert!(
        err.to_string().contains("too much work"),
        "{template}: the fuel stopped it: {err}"
    );
}

/// minijinja repeats (`*`) and joins (`+`) lists lazily, for free, and a list can hold the same
/// list many times; the engine then walks such values by itself when it prints, compares,
/// hashes or indexes them. The vendored minijinja charges those walks to the template's fuel
/// (vendor/README.md). Without it each of these renders `Ok` after walking a million items or
/// a gigabyte of text uncharged.
#[test]
fn walks_of_lazy_and_shared_lists_are_charged_to_the_fuel() {
    for (_, store, _, _dir) in both() {
        let megabyte = "a".repeat(1 << 20);
        store.set("g", "big", &megabyte).unwrap();
        store.set("g", "twin", &megabyte).unwrap(); // equal text, another allocation
        for template in [
            "{{ [[1] * 1000000] == [[1] * 1000000] }}".to_string(),
            "{{ [[1] * 1000000] < [[1] * 1000000] }}".to_string(),
            "{{ ([1] * 1000000)[-1] }}".to_string(),
            "{{ ([1] * 500000 + [2] * 500000)[-1] }}".to_string(),
            format!(
                "{}{}{{{{ a == b }}}}",
                doubled("a", "[1]", 20),
                doubled("b", "[1]", 20)
            ),
            "{{ [big] * 1000 == [twin] * 1000 }}".to_string(),
            "{{ ([big] * 1000)|unique|list|length }}".to_string(),
        ] {
            expect_out_of_fuel(&store, &template);
        }
    }
}

/// Runs `test` like [`in_child_process`], limited to 3 GB of address space and 60 s, so that a
/// template that exhausts memory or runs for ever fails the test quickly (h171).
fn in_limited_child(test: &str) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 3000000; exec timeout 60 \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("KV_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child failed ({}; 124 is the timeout, 134 an abort):\n{}",
        out.status,
        stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

/// The short templates that exhausted memory or ran for ever before the walks were charged
/// (h168, h171): each is now a template error at once. In a limited child process, so that a
/// regression fails this test instead of taking the test run down with it.
#[test]
fn short_templates_cannot_exhaust_memory_or_run_for_ever() {
    if std::env::var_os("KV_TEST_CHILD").is_none() {
        return in_limited_child("render::short_templates_cannot_exhaust_memory_or_run_for_ever");
    }
    let store = store::Store::in_memory().unwrap();
    store.set("g", "big", &"a".repeat(1 << 20)).unwrap();
    let forms = [
        "{{ [[1] * 100000000] * 100000000 }}".to_string(),
        "{{ ([[1] * 100000000] * 100000000)|string|length }}".to_string(),
        "{{ ([[1] * 100000000] * 100000000) ~ '' }}".to_string(),
        "{{ '%s'|format([[1] * 100000000] * 100000000) }}".to_string(),
        "{{ dict(a=[[1] * 100000000] * 100000000) }}".to_string(),
        "{{ [[1] * 100000000] * 2 < [[1] * 100000000] * 2 }}".to_string(),
        "{{ [big] * 100000000 }}".to_string(),
        format!("{}{{{{ a }}}}", doubled("a", "[1, 2, 3, 4, 5, 6, 7, 8]", 35)),
        format!(
            "{{% set a = (1,) %}}{}{{{{ a }}}}",
            "{% set a = (a, a) %}".repeat(35)
        ),
        // Groups print their items themselves, not through a list's walk (h171 D1).
        format!(
            "{{% set a = [[0]]|groupby('0') %}}{}{{{{ a }}}}",
            "{% set a = [a[0], a[0]]|groupby('0') %}".repeat(40)
        ),
        // `join` without a separator never checked its output's size: 50 GB (h171 D2).
        "{{ (['a' * 1000000] * 50000)|join|length }}".to_string(),
        "{{ (['a' * 1000000] * 50000)|join('')|length }}".to_string(),
        // A sum of strings copies the growing total at each item (h171 D3).
        "{{ (['a' * 100000] * 4000)|sum(start='')|length }}".to_string(),
    ];
    for form in &forms {
        let long = format!("{form}{}", " ".repeat(1_000)); // the render thread's path too
        for template in [form, &long] {
            expect_out_of_fuel(&store, template);
        }
    }
}

/// Fuel running out in the middle of a sort stops the sort with the fuel error: comparisons
/// that return `Equal` once the fuel is gone are not a total order, on which the standard
/// library's sort panics (h171 D5: "the template engine failed", 5 sorts in 600 at random).
#[test]
fn fuel_running_out_inside_a_sort_is_the_fuel_error_not_a_panic() {
    let template = "{% set p = [1]*334 %}{{ [p+[15],p+[3],p+[9],p+[13],p+[5],p+[14],p+[2],\
        p+[17],p+[8],p+[10],p+[6],p+[16],p+[12],p+[18],p+[0],p+[19],p+[4],p+[7],p+[20],p+[1],\
        p+[11]]|sort|length }}";
    for (_, store, _, _dir) in both() {
        expect_out_of_fuel(&store, template);
        for (filter, sorted) in [("sort", "[1, 2, 3]"), ("sort(reverse=true)", "[3, 2, 1]")] {
            let small = format!("{{{{ [2, 3, 1]|{filter} }}}}");
            assert_eq!(store.render(&small, "g").unwrap(), sorted);
        }
        let stable =
            "{{ [[2, 'a'], [1, 'b'], [2, 'c'], [1, 'd']]|sort(attribute='0')|map(attribute=1)|join }}";
        assert_eq!(store.render(stable, "g").unwrap(), "bdac", "the sort is stable");
    }
}

/// A store whose group `g` holds `entries` values of `len` bytes, `key00000`…, each starting
/// with five digits that differ from its neighbours'.
fn group_of(entries: usize, len: usize) -> store::Store {
    let store = store::Store::in_memory().unwrap();
    for i in 0..entries {
        let value = format!("{:05}{}", (i * 7919) % 100_000, "v".repeat(len - 5));
        store.set("g", &format!("key{i:05}"), &value).unwrap();
    }
    store
}

/// Long values compared or deduplicated cost the bytes actually compared, not their length
/// (h171 D4): 500 values of 20 KB that differ in their first bytes deduplicate and sort within
/// the fuel, as they did before the walks were charged.
#[test]
fn long_values_cost_the_bytes_compared_not_their_length() {
    let store = group_of(500, 20_000);
    for template in [
        "{{ entries|dictsort|map(attribute=1)|unique|list|length }}",
        "{{ entries|dictsort(by='value', case_sensitive=true)|length }}",
        "{{ entries|dictsort|map(attribute=1)|sort(case_sensitive=true)|length }}",
    ] {
        assert_eq!(store.render(template, "g").unwrap(), "500", "{template}");
    }
}

/// Sorting input already in order, or in reverse order, costs about one comparison per item,
/// as with the standard library's sort the merge sort replaced (h172 B1: a group's `items` come
/// in key order, and 5,000 of them sorted ran out of fuel), and a sum of strings costs each
/// item's bytes once, like `join` (h172 B2: every partial sum was charged, so 1,000 values of
/// 50 bytes ran out of fuel); both rendered on the crates.io release.
#[test]
fn sorted_input_and_sums_of_strings_cost_no_more_than_before() {
    let store = group_of(5_000, 50);
    for template in [
        "{{ entries|items|sort|length }}",
        "{{ entries|items|reverse|sort|length }}",
        "{{ entries|items|sort(reverse=true)|length }}",
    ] {
        assert_eq!(store.render(template, "g").unwrap(), "5000", "{template}");
    }
    let first_three = "{{ (entries|items|reverse|sort|map(attribute=0))[:3]|join(',') }}";
    assert_eq!(
        store.render(first_three, "g").unwrap(),
        "key00000,key00001,key00002"
    );
    for template in [
        "{{ (entries|dictsort|map(attribute=1))[:1000]|join|length }}",
        "{{ (entries|dictsort|map(attribute=1))[:1000]|sum(start='')|length }}",
    ] {
        assert_eq!(store.render(template, "g").unwrap(), "50000", "{template}");
    }
    assert_eq!(
        store
            .render("{{ ['a', 'b', 'c']|sum(start='x') }} {{ [1, 2.5]|sum }}", "g")
            .unwrap(),
        "xabc 3.5"
    );
}

/// Charging the walks leaves room for real work: a thousand 1 KiB entries sorted, compared,
/// deduplicated and printed, and lists repeated and compared, still render.
#[test]
fn ordinary_templates_over_a_large_group_still_render() {
    for (_, store, _, _dir) in both() {
        for i in 0..1_000 {
            store
                .set(
                    "g",
                    &format!("key{i:04}"),
                    &format!("{i:04}{}", "v".repeat(1_020)),
                )
                .unwrap();
        }
        let listing = store
            .render(
                "{% for k, v in entries|dictsort %}{{ k }}={{ v }}\n{% endfor %}",
                "g",
            )
            .unwrap();
        assert_eq!(listing.lines().count(), 1_000);
        assert!(listing.starts_with("key0000=0000vvv"), "{}", &listing[..20]);
        let summary = store
            .render(
                "{{ entries|dictsort|map(attribute=1)|sort|unique|list|length }} \
                 {{ entries.key0001 < entries.key0002 }} {{ entries.key0001 == entries.key0001 }} \
                 {{ ([1, 2] * 3) == [1, 2, 1, 2, 1, 2] }} {{ ([1] * 1000)[-1] }} {{ [[1] * 3] * 2 }}",
                "g",
            )
            .unwrap();
        assert_eq!(summary, "1000 True True True 1 [[1, 1, 1], [1, 1, 1]]");
    }
}
