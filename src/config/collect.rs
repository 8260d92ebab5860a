//! Deserializes one part of the configuration and collects every serde error in it.
//!
//! serde stops at the first error. To report every unknown key and bad value at once, the
//! offending key is removed, or replaced by a placeholder where the type needs a value, and
//! deserialization runs again. Errors inside a placeholder come from the placeholder, so they are
//! not reported. The number of runs is bounded by the size of the value.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// One serde error and the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The dotted path of the field inside the deserialized value (`http.expect_status[1]`),
    /// or empty for the value as a whole.
    pub path: String,
    /// The description, with the bad value and the fix.
    pub message: String,
}

/// The outcome of [`deserialize_collecting`].
pub struct Collected<T> {
    /// The value without the keys that had errors, or `None` when a required field had an
    /// error or the errors could not be worked around.
    pub value: Option<T>,
    /// Every error, in the order serde found them.
    pub errors: Vec<FieldError>,
    /// Whether every error was an unknown key, so that `value` means what the file means.
    pub only_unknown_keys: bool,
}

/// One step of a path into a `serde_json::Value`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The kind of a serde error, parsed from its message.
enum ErrorKind {
    UnknownField(String),
    MissingField(String),
    /// An unknown enum value, with the first of the expected values when serde lists them.
    UnknownVariant(String, Option<String>),
    Other,
}

/// Deserializes `value` as `T`, collecting every error instead of stopping at the first.
pub fn deserialize_collecting<T: DeserializeOwned>(mut value: Value) -> Collected<T> {
    let mut errors = Vec::new();
    let mut only_unknown_keys = true;
    // Paths whose value is a placeholder. Errors at or below them are not reported.
    let mut placeholders: Vec<Vec<Step>> = Vec::new();
    // Paths of removed bad values, whose later "missing field" errors are already reported.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    // Each run repairs one node or adds one placeholder, so this bounds the runs generously.
    let max_runs = 4 * count_nodes(&value) + 8;

    for _ in 0..max_runs {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => {
                let value = placeholders.is_empty().then_some(parsed);
                return Collected {
                    value,
                    errors,
                    only_unknown_keys,
                };
            }
            Err(err) => err,
        };
        let text = err.inner().to_string();
        let kind = classify(&text);
        let Some(mut path) = steps(err.path()) else {
            // The path has a segment that is neither a key nor an index. The error is reported,
            // but its value cannot be found, so it cannot be repaired.
            errors.push(FieldError {
                path: err.path().to_string(),
                message: describe(&kind, &text),
            });
            only_unknown_keys = false;
            break;
        };
        if let ErrorKind::MissingField(name) = &kind {
            path.push(Step::Key(name.clone()));
        }
        let in_placeholder = placeholders.iter().any(|p| path.starts_with(p));
        let was_removed = removed.contains(&path);
        // A one-key map such as `{ token: ... }` whose only key was removed for its own error
        // is now empty; that follows from the error already reported.
        let emptied = text.contains("expected map with a single key")
            && removed
                .iter()
                .any(|gone| gone.len() == path.len() + 1 && gone.starts_with(&path));
        if !in_placeholder && !was_removed && !emptied {
            errors.push(FieldError {
                path: format_path(&path),
                message: describe(&kind, &text),
            });
            only_unknown_keys &= matches!(kind, ErrorKind::UnknownField(_));
        }

        let repaired = match kind {
            ErrorKind::UnknownField(_) => remove(&mut value, &path),
            ErrorKind::MissingField(_) => {
                placeholders.push(path.clone());
                replace(&mut value, &path, Value::String(String::new()))
            }
            ErrorKind::UnknownVariant(_, Some(first)) => {
                placeholders.push(path.clone());
                replace(&mut value, &path, Value::String(first))
            }
            ErrorKind::UnknownVariant(_, None) => false,
            ErrorKind::Other => {
                let optional_key = matches!(path.last(), Some(Step::Key(_)));
                if optional_key && !in_placeholder && !was_removed {
                    // Most fields are optional, so without the key the rest can still be checked.
                    removed.push(path.clone());
                    remove(&mut value, &path)
                } else {
                    match placeholder_for(&text) {
                        Some(placeholder) => {
                            placeholders.push(path.clone());
                            replace(&mut value, &path, placeholder)
                        }
                        None => false,
                    }
                }
            }
        };
        if !repaired {
            break;
        }
    }
    Collected {
        value: None,
        errors,
        only_unknown_keys,
    }
}

fn classify(text: &str) -> ErrorKind {
    let quoted = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(field) = quoted("unknown field `") {
        return ErrorKind::UnknownField(field);
    }
    if let Some(field) = quoted("missing field `") {
        return ErrorKind::MissingField(field);
    }
    if let Some(variant) = quoted("unknown variant `") {
        let first = text
            .split(", expected ")
            .nth(1)
            .and_then(|expected| expected.split('`').nth(1))
            .map(str::to_string);
        return ErrorKind::UnknownVariant(variant, first);
    }
    ErrorKind::Other
}

fn describe(kind: &ErrorKind, text: &str) -> String {
    let expected = text.split(", expected ").nth(1).unwrap_or("");
    match kind {
        ErrorKind::UnknownField(field) if expected.is_empty() => {
            format!("unknown key `{field}`; this block takes no keys")
        }
        ErrorKind::UnknownField(field) => {
            format!("unknown key `{field}`; check the spelling (expected {expected})")
        }
        ErrorKind::MissingField(field) => format!("required key `{field}` is missing"),
        ErrorKind::UnknownVariant(variant, _) => {
            format!("unknown value `{variant}`; expected {expected}")
        }
        ErrorKind::Other => match text.rsplit_once(", expected ") {
            Some((found, expected)) => format!("{found}, expected {}", plain_type(expected)),
            None => text.to_string(),
        },
    }
}

/// Rewrites the Rust type names in serde's "expected ..." in the terms of the YAML file, so
/// that `struct HttpSpec` reads "a map" and `u16` reads "an integer from 0 to 65535".
fn plain_type(expected: &str) -> String {
    if expected.starts_with("struct ") {
        return "a map".to_string();
    }
    let range = match expected {
        "u8" => "from 0 to 255",
        "u16" => "from 0 to 65535",
        "u32" => "from 0 to 4294967295",
        "u64" | "usize" => "of 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "",
        _ => return expected.to_string(),
    };
    if range.is_empty() {
        "an integer".to_string()
    } else {
        format!("an integer {range}")
    }
}

/// Returns a placeholder of the type that serde's "expected ..." names, to replace a bad value.
fn placeholder_for(text: &str) -> Option<Value> {
    let expected = text.rsplit(", expected ").next()?;
    let has = |words: &[&str]| words.iter().any(|word| expected.contains(word));
    if has(&["bool"]) {
        Some(Value::Bool(false))
    } else if has(&["sequence", "array", "tuple", "list"]) {
        Some(Value::Array(Vec::new()))
    } else if has(&["map", "struct"]) {
        Some(Value::Object(serde_json::Map::new()))
    } else if has(&["string", "path", "char"]) {
        Some(Value::String(String::new()))
    } else if has(&[
        "integer", "number", "float", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64",
        "usize", "isize", "f32", "f64",
    ]) {
        // One rather than zero, because it also fits types that exclude zero.
        Some(Value::from(1))
    } else {
        None
    }
}

fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } | Segment::Enum { variant: key } => Some(Step::Key(key.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

fn format_path(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Returns the value that contains the last step of `path`.
fn parent_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let (_, parents) = path.split_last()?;
    let mut current = value;
    for step in parents {
        current = match step {
            Step::Key(key) => current.as_object_mut()?.get_mut(key)?,
            Step::Index(index) => current.as_array_mut()?.get_mut(*index)?,
        };
    }
    Some(current)
}

/// Removes the key at `path`, returning whether it was there.
fn remove(value: &mut Value, path: &[Step]) -> bool {
    match (parent_mut(value, path), path.last()) {
        (Some(Value::Object(map)), Some(Step::Key(key))) => map.remove(key).is_some(),
        _ => false,
    }
}

/// Sets the value at `path`, adding the key when missing. Returns false when the path does not
/// lead into the value or the value is already `new`, which would repeat the same error.
fn replace(value: &mut Value, path: &[Step], new: Value) -> bool {
    let slot = match (parent_mut(value, path), path.last()) {
        (Some(Value::Object(map)), Some(Step::Key(key))) => {
            map.entry(key.clone()).or_insert(Value::Null)
        }
        (Some(Value::Array(items)), Some(Step::Index(index))) => match items.get_mut(*index) {
            Some(item) => item,
            None => return false,
        },
        _ => return false,
    };
    if *slot == new {
        return false;
    }
    *slot = new;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        level: Level,
        count: Option<u32>,
        inner: Option<Inner>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        enabled: bool,
        limit: Option<u16>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Level {
        Low,
        High,
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|error| error.path.as_str()).collect()
    }

    #[test]
    fn valid_value_has_no_errors() {
        let collected: Collected<Item> =
            deserialize_collecting(json!({"name": "a", "level": "low"}));
        assert!(collected.value.is_some());
        assert!(collected.errors.is_empty());
        assert!(collected.only_unknown_keys);
    }

    #[test]
    fn every_unknown_key_is_reported() {
        let collected: Collected<Item> = deserialize_collecting(json!({
            "name": "a", "nmae": "b", "level": "low", "inner": {"enabled": true, "limt": 3}, "extra": 1
        }));
        assert_eq!(paths(&collected.errors), ["extra", "inner.limt", "nmae"]);
        assert!(collected.only_unknown_keys);
        assert!(collected.value.is_some(), "the rest still deserializes");
        assert_eq!(
            collected.errors[1].message,
            "unknown key `limt`; check the spelling (expected `enabled` or `limit`)"
        );
    }

    #[test]
    fn every_bad_value_is_reported() {
        let collected: Collected<Item> = deserialize_collecting(json!({
            "name": 5,
            "level": "medium",
            "count": "many",
            "inner": {"enabled": "yes", "limit": -1},
            "tags": ["a", 2, "c"],
            "typo": true,
        }));
        assert_eq!(
            paths(&collected.errors),
            [
                "count",
                "inner.enabled",
                "inner.limit",
                "level",
                "name",
                "tags[1]",
                "typo"
            ]
        );
        assert!(!collected.only_unknown_keys);
        assert!(collected.value.is_none(), "required fields had errors");
        let messages: Vec<&str> = collected
            .errors
            .iter()
            .map(|error| error.message.as_str())
            .collect();
        assert_eq!(
            messages[0],
            "invalid type: string \"many\", expected an integer from 0 to 4294967295"
        );
        assert_eq!(
            messages[3],
            "unknown value `medium`; expected `low` or `high`"
        );
        assert_eq!(messages[5], "invalid type: integer `2`, expected a string");
    }

    #[test]
    fn missing_required_key_does_not_hide_others() {
        let collected: Collected<Item> =
            deserialize_collecting(json!({"inner": {"limit": 3}, "zzz": 1}));
        assert_eq!(
            paths(&collected.errors),
            ["inner.enabled", "zzz", "name", "level"]
        );
        assert_eq!(
            collected.errors[0].message,
            "required key `enabled` is missing"
        );
        assert!(collected.value.is_none());
    }

    #[test]
    fn bad_optional_value_leaves_the_rest() {
        let collected: Collected<Item> =
            deserialize_collecting(json!({"name": "a", "level": "low", "count": "x"}));
        assert_eq!(paths(&collected.errors), ["count"]);
        let item = collected.value.expect("count is optional");
        assert!(item.count.is_none());
        assert!(!collected.only_unknown_keys);
    }

    #[test]
    fn rust_type_names_are_rewritten() {
        let collected: Collected<Item> =
            deserialize_collecting(json!({"name": "a", "level": "low", "inner": 5}));
        assert_eq!(
            collected.errors[0].message,
            "invalid type: integer `5`, expected a map"
        );
        let collected: Collected<Item> = deserialize_collecting(
            json!({"name": "a", "level": "low", "inner": {"enabled": true, "limit": "x"}}),
        );
        assert_eq!(
            collected.errors[0].message,
            "invalid type: string \"x\", expected an integer from 0 to 65535"
        );
    }

    #[test]
    fn value_of_wrong_shape_is_reported_once() {
        let collected: Collected<Item> = deserialize_collecting(json!("text"));
        assert_eq!(paths(&collected.errors), [""]);
        assert!(collected.value.is_none());
    }
}
