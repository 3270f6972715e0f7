//! Keeps the example file, the defaults and the error messages honest.

use super::*;

#[test]
fn example_is_the_default() {
    let parsed = Config::parse(EXAMPLE_TOML, "example.toml").unwrap();
    assert_eq!(parsed, Config::default());
}

/// Every key the types know appears in the example (not just defaulted), and
/// every key in the example is preceded by a comment.
#[test]
fn example_lists_and_documents_every_key() {
    assert_example_documents(&Config::default(), EXAMPLE_TOML);
}

/// Asserts that `example` lists exactly the keys of `default` (serialised),
/// each preceded by a comment line. Shared by every role's example file.
pub(crate) fn assert_example_documents<T: Serialize>(default: &T, example: &str) {
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() {
                    keys(v, &path, out);
                } else {
                    out.push(path);
                }
            }
        }
    }
    let from_types = toml::Value::try_from(default).unwrap();
    let from_example: toml::Value = toml::from_str(example).unwrap();
    let (mut a, mut b) = (vec![], vec![]);
    keys(&from_types, "", &mut a);
    keys(&from_example, "", &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b);

    let lines: Vec<&str> = example.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
            continue;
        }
        assert!(
            i > 0 && lines[i - 1].trim().starts_with('#'),
            "undocumented key: {t}"
        );
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = Config::parse(
        "[services.redis]\nenabled = true\nportt = 3\n",
        "/etc/m.toml",
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    assert!(s.starts_with("/etc/m.toml:3:1: "), "{s}");
    assert!(s.contains("portt"), "{s}");
}

#[test]
fn bad_type_names_key() {
    let e = Config::parse("[limits]\nmax_connections = \"lots\"\n", "c.toml").unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    assert!(s.contains("limits.max_connections"), "{s}");
    assert!(s.starts_with("c.toml:2:"), "{s}");
}

#[test]
fn bad_value_names_key() {
    let e = Config::parse("[services.redis]\nversion = \"five\"\n", "c.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.toml: key 'services.redis.version': 'five' is not MAJOR.MINOR.PATCH"
    );
    let e = Config::parse("[services.redis]\nlisten = [\"nowhere\"]\n", "c.toml").unwrap_err();
    assert!(e.to_string().contains("services.redis.listen"), "{e}");
}

#[test]
fn syntax_error_is_one_line() {
    let e = Config::parse("[sensor\nname = 1", "c.toml").unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n') && s.starts_with("c.toml:1:"), "{s}");
}

#[test]
fn only_services_picks_and_rejects() {
    let mut c = Config::default();
    c.only_services(&[("redis".into(), "127.0.0.1:7000".parse().unwrap())])
        .unwrap();
    assert_eq!(
        c.services.redis.listen,
        vec!["127.0.0.1:7000".parse().unwrap()]
    );
    assert!(c.services.redis.fallback_listen.is_empty());
    assert!(
        c.only_services(&[("gopher".into(), "127.0.0.1:70".parse().unwrap())])
            .is_err()
    );
}

/// Every service name but the catch-all has endpoints, in start order, so
/// `--service` and `mirage firewall` cannot miss a newly added service.
#[test]
fn endpoints_cover_every_service_with_ports() {
    let c = Config::default();
    let names: Vec<&str> = c.services.endpoints().iter().map(|e| e.name).collect();
    let want: Vec<&str> = SERVICE_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "catchall")
        .collect();
    assert_eq!(names, want);
}
