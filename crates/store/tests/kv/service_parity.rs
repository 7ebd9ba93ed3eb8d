//! h153 parity audit of the Service action table (SPEC §11) against §3.5 and §6: each
//! `store/scoped/<name>` takes "the namespace + the unscoped args, group [`default`]" and
//! answers "as unscoped"; a missing or mistyped argument names that argument.

use serde_json::{Value, json};
use store::{ErrorKind, Kv, Service, ServiceConfig};

fn service() -> (Service, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("tempdir");
    let service = Service::open(ServiceConfig::new(home.path())).expect("open");
    (service, home)
}

fn with(base: &Value, extra: Value) -> Value {
    let mut map = base.as_object().cloned().unwrap_or_default();
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        map.insert(k, v);
    }
    Value::Object(map)
}

/// A namespace with two live keys in `default` and one in `other` (and an unscoped decoy).
fn seeded() -> (Service, tempfile::TempDir) {
    let (service, home) = service();
    let s = service.store();
    s.set("ns:default", "a", "1").unwrap();
    s.set("ns:default", "b", "2").unwrap();
    s.set("ns:other", "c", "3").unwrap();
    s.set("default", "z", "decoy").unwrap();
    (service, home)
}

/// DEFECT (known, confirmed): SPEC §11 says every `store/scoped/*` action takes the unscoped
/// arguments with `group [default]`, and the module doc of actions.rs says the same. Every
/// scoped action does default its group, except `store/scoped/count`, which without `group`
/// counts the whole namespace (`count_all("")`, actions.rs `kv_action` "count" arm ignores
/// `default_group`). So `{namespace}` and `{namespace, group: "default"}` disagree.
#[test]
fn scoped_count_without_group_counts_the_default_group_like_every_other_scoped_action() {
    let (service, _home) = seeded();
    let explicit = service
        .call(
            "store/scoped/count",
            json!({"namespace": "ns", "group": "default"}),
        )
        .unwrap();
    assert_eq!(explicit, json!({"count": 2}));
    let defaulted = service
        .call("store/scoped/count", json!({"namespace": "ns"}))
        .unwrap();
    assert_eq!(
        defaulted, explicit,
        "store/scoped/count without group should default the group to `default` (SPEC §11)"
    );
}

/// OK: the other scoped twins that take a `group` treat an absent one exactly as `default`
/// (compared action by action, each on a fresh copy of the same data).
#[test]
fn every_other_scoped_action_defaults_its_group_to_default() {
    let cases: Vec<(&str, Value)> = vec![
        ("store/scoped/get", json!({"key": "a"})),
        ("store/scoped/exists", json!({"key": "a"})),
        ("store/scoped/get-all", json!({})),
        ("store/scoped/list", json!({"offset": 1, "limit": 5})),
        (
            "store/scoped/render",
            json!({"template": "{{ a }}-{{ b }}-{{ group }}"}),
        ),
        ("store/scoped/delete", json!({"key": "a"})),
        ("store/scoped/delete-group", json!({})),
        ("store/scoped/increment", json!({"key": "n", "delta": 4})),
    ];
    for (action, args) in cases {
        let run = |group: Option<&str>| {
            let (service, _home) = seeded();
            let mut args = with(&args, json!({"namespace": "ns"}));
            if let Some(g) = group {
                args["group"] = json!(g);
            }
            let result = service.call(action, args).unwrap();
            let after = service.store().get_all("ns:default").unwrap();
            (strip_versions(result), after)
        };
        assert_eq!(run(None), run(Some("default")), "{action}");
    }
    // `set` too: the entry lands in `ns:default`.
    let (service, _home) = seeded();
    service
        .call(
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v"}),
        )
        .unwrap();
    assert_eq!(service.store().get("ns:default", "k").unwrap(), "v");
}

fn strip_versions(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("version");
    }
    v
}

/// OK: each scoped twin answers with the same shape and values as the unscoped action run on
/// the full group name (SPEC §11 "as unscoped"; §6 results use local names).
#[test]
fn scoped_results_equal_unscoped_results_on_the_full_group() {
    // (action, unscoped args, scoped args)
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "get",
            json!({"group": "ns:other", "key": "c"}),
            json!({"group": "other", "key": "c"}),
        ),
        (
            "exists",
            json!({"group": "ns:other", "key": "c"}),
            json!({"group": "other", "key": "c"}),
        ),
        (
            "get-all",
            json!({"group": "ns:default"}),
            json!({"group": "default"}),
        ),
        (
            "list",
            json!({"group": "ns:default", "limit": 1, "offset": 1}),
            json!({"group": "default", "limit": 1, "offset": 1}),
        ),
        (
            "list",
            json!({"group": "ns:default", "limit": 0}),
            json!({"group": "default", "limit": 0}),
        ),
        (
            "count",
            json!({"group": "ns:default"}),
            json!({"group": "default"}),
        ),
        ("count", json!({"prefix": "ns:oth"}), json!({"prefix": "oth"})),
        (
            "render",
            json!({"group": "ns:default", "template": "{{ a }}{{ b }}"}),
            json!({"group": "default", "template": "{{ a }}{{ b }}"}),
        ),
        (
            "increment",
            json!({"group": "ns:other", "key": "n"}),
            json!({"group": "other", "key": "n"}),
        ),
        (
            "delete",
            json!({"group": "ns:other", "key": "c"}),
            json!({"group": "other", "key": "c"}),
        ),
        (
            "delete-group",
            json!({"group": "ns:default"}),
            json!({"group": "default"}),
        ),
        (
            "delete-prefix",
            json!({"prefix": "ns:oth"}),
            json!({"prefix": "oth"}),
        ),
        ("purge", json!({}), json!({})),
    ];
    for (name, unscoped, scoped) in cases {
        let (a, _h1) = seeded();
        let (b, _h2) = seeded();
        let plain = a.call(&format!("store/{name}"), unscoped.clone()).unwrap();
        let local = b
            .call(
                &format!("store/scoped/{name}"),
                with(&scoped, json!({"namespace": "ns"})),
            )
            .unwrap();
        assert_eq!(
            strip_versions(local),
            strip_versions(plain),
            "store/{name} {unscoped} vs scoped {scoped}"
        );
    }
    // `groups` answers local names (the one deliberate difference).
    let (service, _home) = seeded();
    assert_eq!(
        service
            .call("store/scoped/groups", json!({"namespace": "ns"}))
            .unwrap(),
        json!({"groups": ["default", "other"]})
    );
    assert_eq!(
        service.call("store/groups", json!({"prefix": "ns:"})).unwrap(),
        json!({"groups": ["ns:default", "ns:other"]})
    );
}

/// SPEC §3.7 puts `group` in the render context and §6 says results use local names: a scoped
/// render sees its local group name.
#[test]
fn scoped_render_sees_the_local_group_name() {
    let (service, _home) = seeded();
    let text = service
        .call(
            "store/scoped/render",
            json!({"namespace": "ns", "group": "other", "template": "{{ group }}:{{ c }}"}),
        )
        .unwrap();
    assert_eq!(text, json!({"text": "other:3"}));
}

/// OK (SPEC §11): a missing or mistyped argument of a scoped action is `InvalidInput` naming that
/// argument, as for the unscoped twin, and nothing is written.
#[test]
fn scoped_missing_or_mistyped_arguments_name_the_argument_like_the_unscoped_twin() {
    let (service, _home) = service();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("get", json!({"group": "g"}), "key"),
        ("get", json!({"group": 5, "key": "k"}), "group"),
        ("set", json!({"group": "g", "key": "k"}), "value"),
        ("set", json!({"group": "g", "value": "v"}), "key"),
        (
            "set",
            json!({"group": "g", "key": "k", "value": "v", "ttl_ms": -1}),
            "ttl_ms",
        ),
        (
            "set",
            json!({"group": "g", "key": "k", "value": "v", "ttl_ms": 1.5}),
            "ttl_ms",
        ),
        (
            "set",
            json!({"group": "g", "key": "k", "value": "v", "if_version": "1"}),
            "if_version",
        ),
        (
            "increment",
            json!({"group": "g", "key": "k", "delta": 1.5}),
            "delta",
        ),
        (
            "increment",
            json!({"group": "g", "key": "k", "delta": u64::MAX}),
            "delta",
        ),
        ("delete", json!({"group": "g"}), "key"),
        ("exists", json!({"group": "g", "key": []}), "key"),
        ("get-all", json!({"group": true}), "group"),
        ("list", json!({"group": "g", "limit": "10"}), "limit"),
        ("list", json!({"group": "g", "offset": -1}), "offset"),
        ("groups", json!({"prefix": 5}), "prefix"),
        ("count", json!({"group": 5}), "group"),
        ("count", json!({"prefix": 5}), "prefix"),
        ("count", json!({"group": "g", "prefix": "p"}), "prefix"),
        ("delete-prefix", json!({}), "prefix"),
        ("render", json!({"group": "g"}), "template"),
    ];
    for (name, args, field) in cases {
        let unscoped_args = {
            let mut a = args.clone();
            if a.get("group").is_none()
                && matches!(
                    name,
                    "get" | "set" | "increment" | "delete" | "exists" | "get-all" | "list" | "render"
                )
            {
                a["group"] = json!("g");
            }
            a
        };
        for (action, args) in [
            (format!("store/{name}"), unscoped_args),
            (
                format!("store/scoped/{name}"),
                with(&args, json!({"namespace": "ns"})),
            ),
        ] {
            let e = service.call(&action, args.clone()).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (ErrorKind::InvalidInput, Some(field)),
                "{action} {args}: {e}"
            );
        }
    }
    assert_eq!(service.store().count_all("").unwrap(), 0);
    // The unscoped actions that require `group` name it when it is missing; scoped ones default it.
    for name in [
        "get",
        "set",
        "increment",
        "delete",
        "exists",
        "get-all",
        "list",
        "delete-group",
        "render",
    ] {
        let args = json!({"key": "k", "value": "v", "template": "t"});
        let args = match name {
            "get" | "delete" | "exists" | "increment" => json!({"key": "k"}),
            "set" => json!({"key": "k", "value": "v"}),
            "render" => json!({"template": "t"}),
            _ => {
                let _ = args;
                json!({})
            }
        };
        let e = service.call(&format!("store/{name}"), args).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::InvalidInput, Some("group")),
            "store/{name}: {e}"
        );
    }
}

/// OK / pinned: an argument the action does not take is refused before anything runs, with
/// `field: "args"` (SPEC §11 is silent on extra arguments; docs/guarantees.md: "refused before it runs").
/// `namespace` on an unscoped action, `quota` on a scoped action other than `set`, and a
/// misspelt `ttl` are all refused, and nothing is written.
#[test]
fn extra_arguments_are_refused_with_field_args_and_nothing_runs() {
    let (service, _home) = service();
    let cases: Vec<(&str, Value)> = vec![
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": "v", "ttl": 5}),
        ),
        (
            "store/set",
            json!({"group": "g", "key": "k", "value": "v", "namespace": "ns"}),
        ),
        ("store/increment", json!({"group": "g", "key": "k", "quota": {}})),
        (
            "store/scoped/increment",
            json!({"namespace": "ns", "key": "k", "quota": {"max_keys": 1}}),
        ),
        ("store/scoped/usage", json!({"namespace": "ns", "group": "g"})),
        ("store/purge", json!({"group": "g"})),
        ("store/changes", json!({"group": "g"})),
    ];
    for (action, args) in cases {
        let e = service.call(action, args.clone()).unwrap_err();
        assert_eq!(
            (e.kind(), e.field(), e.op()),
            (ErrorKind::InvalidInput, Some("args"), "Service::call"),
            "{action} {args}: {e}"
        );
    }
    assert_eq!(service.store().count_all("").unwrap(), 0);
    // Inside `quota`, an unknown key names `quota`; a mistyped one names the key.
    let e = service
        .call(
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v", "quota": {"max_key": 1}}),
        )
        .unwrap_err();
    assert_eq!(e.field(), Some("quota"), "{e}");
    let e = service
        .call(
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v", "quota": {"max_bytes": -1}}),
        )
        .unwrap_err();
    assert_eq!(e.field(), Some("max_bytes"), "{e}");
}

/// OK: the feed actions have no scoped twin (SPEC lists none): unknown action, `field: "action"`;
/// `store/usage` likewise has no unscoped twin.
#[test]
fn actions_without_a_twin_are_unknown_actions() {
    let (service, _home) = service();
    for action in [
        "store/scoped/changes",
        "store/scoped/last-seq",
        "store/usage",
        "store/scoped/sql",
    ] {
        let e = service.call(action, json!({"namespace": "ns"})).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::InvalidInput, Some("action")),
            "{action}: {e}"
        );
    }
}

/// OK: the documented defaults — `increment` delta 1, `list` limit 100 offset 0, `groups`
/// prefix "", `changes` since 0 limit 1000 — and `store/changes` limit outside 1..=10,000 is
/// `InvalidInput { field: "limit" }` (SPEC §5.3), while `store/list` limit 0 is an empty page
/// (SPEC §3.5).
#[test]
fn documented_defaults_and_limits() {
    let (service, _home) = service();
    for i in 0..105 {
        service.store().set("g", &format!("k{i:03}"), "v").unwrap();
    }
    assert_eq!(
        service
            .call("store/increment", json!({"group": "c", "key": "n"}))
            .unwrap(),
        json!({"value": 1})
    );
    let list = service.call("store/list", json!({"group": "g"})).unwrap();
    assert_eq!(list["entries"].as_array().unwrap().len(), 100);
    assert_eq!(list["entries"][0]["key"], "k000");
    let list = service
        .call("store/list", json!({"group": "g", "limit": 0}))
        .unwrap();
    assert_eq!(list, json!({"entries": []}));
    let list = service
        .call(
            "store/list",
            json!({"group": "g", "offset": u64::MAX, "limit": u64::MAX}),
        )
        .unwrap();
    assert_eq!(list, json!({"entries": []}));
    let changes = service.call("store/changes", json!({})).unwrap();
    assert_eq!(changes["changes"].as_array().unwrap().len(), 106);
    assert_eq!(changes["changes"][0]["seq"], 1);
    for limit in [0u64, 10_001] {
        let e = service
            .call("store/changes", json!({"limit": limit}))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::InvalidInput, Some("limit")),
            "{e}"
        );
    }
}

/// BORDERLINE: SPEC §6 makes `increment` a checked write, but §11 gives only `store/scoped/set`
/// a `quota`, so a scoped increment through the Service (and `store kv --ns NS incr`) can
/// never be held to one: it is refused as an unknown argument.
#[test]
fn a_scoped_increment_cannot_carry_a_quota() {
    let (service, _home) = service();
    service
        .call(
            "store/scoped/set",
            json!({"namespace": "ns", "key": "a", "value": "1", "quota": {"max_keys": 1}}),
        )
        .unwrap();
    let e = service
        .call(
            "store/scoped/increment",
            json!({"namespace": "ns", "key": "b", "quota": {"max_keys": 1}}),
        )
        .unwrap_err();
    assert_eq!(e.field(), Some("args"), "{e}");
    // Without a quota it goes through, past the max_keys the namespace was set with.
    service
        .call("store/scoped/increment", json!({"namespace": "ns", "key": "b"}))
        .unwrap();
    assert_eq!(service.scoped("ns").unwrap().usage().unwrap().keys, 2);
}

/// OK (SPEC §11 acceptance "after `close` → `Closed`"): every KV action with valid arguments,
/// scoped or not, including ones that read nothing (`list` limit 0), answers `Closed`.
#[test]
fn every_kv_action_after_close_is_closed() {
    let (service, _home) = seeded();
    service.close().unwrap();
    let group_key = json!({"group": "default", "key": "a"});
    let cases: Vec<(&str, Value)> = vec![
        ("get", group_key.clone()),
        ("set", with(&group_key, json!({"value": "v"}))),
        (
            "set",
            with(&group_key, json!({"value": "v", "if_version": null, "ttl_ms": 5})),
        ),
        ("increment", group_key.clone()),
        ("delete", group_key.clone()),
        ("exists", group_key.clone()),
        ("get-all", json!({"group": "default"})),
        ("list", json!({"group": "default"})),
        ("list", json!({"group": "default", "limit": 0})),
        ("groups", json!({})),
        ("count", json!({})),
        ("count", json!({"group": "default"})),
        ("delete-group", json!({"group": "default"})),
        ("delete-prefix", json!({"prefix": ""})),
        ("purge", json!({})),
        ("render", json!({"group": "default", "template": "x"})),
    ];
    for (name, args) in cases {
        for (action, args) in [
            (format!("store/{name}"), args.clone()),
            (
                format!("store/scoped/{name}"),
                with(&args, json!({"namespace": "ns"})),
            ),
        ] {
            let e = service.call(&action, args.clone()).unwrap_err();
            assert!(e.is_closed(), "{action} {args}: {e}");
        }
    }
    for (action, args) in [
        ("store/scoped/usage", json!({"namespace": "ns"})),
        (
            "store/scoped/set",
            json!({"namespace": "ns", "key": "k", "value": "v", "quota": {"max_keys": 1}}),
        ),
        ("store/changes", json!({})),
        ("store/last-seq", json!({})),
    ] {
        let e = service.call(action, args.clone()).unwrap_err();
        assert!(e.is_closed(), "{action} {args}: {e}");
    }
}
