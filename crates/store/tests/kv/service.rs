//! SPEC §11 `Service::call` for the KV actions: result shapes exactly as the action table has
//! them, and a conditional `store/set` that also takes `ttl_ms`.

use serde_json::{Value, json};
use store::{ErrorKind, Kv, Service, ServiceConfig};

fn service() -> (Service, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("tempdir");
    let service = Service::open(ServiceConfig::new(home.path())).expect("open");
    (service, home)
}

fn version(result: &Value) -> u64 {
    result["version"].as_u64().expect("version")
}

/// `store/get (group, key) | {value, version}`, with or without a TTL on the entry.
#[test]
fn store_get_returns_exactly_value_and_version() {
    let (service, _home) = service();
    let set = service
        .call("store/set", json!({"group": "g", "key": "k", "value": "v"}))
        .unwrap();
    let got = service
        .call("store/get", json!({"group": "g", "key": "k"}))
        .unwrap();
    assert_eq!(got, json!({"value": "v", "version": version(&set)}));
    service
        .call(
            "store/set",
            json!({"group": "g", "key": "t", "value": "v", "ttl_ms": 60_000}),
        )
        .unwrap();
    let got = service
        .call("store/get", json!({"group": "g", "key": "t"}))
        .unwrap();
    assert_eq!(got.as_object().unwrap().len(), 2, "{got}");
    let scoped = service
        .call("store/scoped/get", json!({"namespace": "n", "key": "k"}))
        .unwrap_err();
    assert_eq!(scoped.kind(), ErrorKind::NotFound);
}

/// `store/set (…, ttl_ms?, if_version?)`: both optional and independent; together they are a
/// compare-and-swap whose entry expires.
#[test]
fn store_set_with_if_version_and_ttl_ms_writes_an_expiring_entry() {
    let (service, _home) = service();
    let args = |value: &str, if_version: Value| json!({"group": "g", "key": "k", "value": value, "ttl_ms": 3_600_000, "if_version": if_version});
    let v1 = version(&service.call("store/set", args("a", Value::Null)).unwrap());
    let entry = service.store().get_with_version("g", "k").unwrap();
    assert_eq!(entry.version, v1);
    let first_expiry = entry.expires_at.expect("an expiry");
    let conflict = service.call("store/set", args("b", Value::Null)).unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Conflict);
    let v2 = version(&service.call("store/set", args("b", json!(v1))).unwrap());
    let entry = service.store().get_with_version("g", "k").unwrap();
    assert_eq!((entry.value.as_str(), entry.version), ("b", v2));
    assert!(entry.expires_at.expect("an expiry") >= first_expiry);
    let stale = service.call("store/set", args("c", json!(v1))).unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    // The scoped action too, its quota checked.
    let scoped = |key: &str| {
        json!({"namespace": "n", "key": key, "value": "v", "ttl_ms": 3_600_000, "if_version": null,
               "quota": {"max_keys": 1}})
    };
    service.call("store/scoped/set", scoped("a")).unwrap();
    let full = service.call("store/scoped/set", scoped("b")).unwrap_err();
    assert_eq!(full.kind(), ErrorKind::QuotaExceeded);
    let stored = service.store().get_with_version("n:default", "a").unwrap();
    assert!(stored.expires_at.is_some());
}

/// An unknown action is reported as such (`field: "action"`) whatever `args` holds.
#[test]
fn an_unknown_action_is_named_even_when_args_is_not_an_object() {
    let (service, _home) = service();
    for args in [json!("x"), json!(null), json!([1])] {
        let err = service.call("store/nope", args).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("action"))
        );
    }
    let err = service.call("store/get", json!("x")).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::InvalidInput, Some("args")));
}

/// A home that is a file, or lies below one, cannot be created. The OS's "File exists" /
/// "Not a directory" named neither the culprit nor the fix; the error names the file in the
/// way, says it is not a directory, and what to do, and leaves the file alone.
#[test]
fn a_home_that_is_a_file_or_below_one_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("afile");
    std::fs::write(&file, "hi").expect("write");
    for home in [file.clone(), file.join("sub")] {
        let err = Service::open(ServiceConfig::new(&home)).unwrap_err();
        assert_eq!((err.kind(), err.op()), (ErrorKind::Io, "Service::open"), "{err}");
        let message = err.to_string();
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(message.contains("not a directory"), "{message}");
        assert!(message.contains("pick another home"), "{message}");
        assert!(!message.contains("os error"), "{message}");
        if home != file {
            assert!(message.contains(&home.display().to_string()), "{message}");
        }
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "hi");
}
