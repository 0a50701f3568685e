//! Camera edits on the config text (SPEC §6) with `toml_edit`, so that comments, blank lines,
//! order and formatting outside the changed lines stay exactly as people wrote them. The
//! result is only text: the caller validates it as `check-config` would before saving.

use serde_json::{Map, Value};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::error::{Error, Kind, Result};

/// The keys of a `[[streams]]` table an edit may set, in the order they are written.
pub const STREAM_KEYS: [&str; 5] = [
    "name",
    "url",
    "enabled",
    "retention_days",
    "segment_seconds",
];

fn parse(text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| {
        Error::bad_request(format!(
            "the config file cannot be parsed; fix it first: {e}"
        ))
    })
}

fn item(key: &str, v: &Value) -> Result<Item> {
    match v {
        Value::String(s) => Ok(value(s.as_str())),
        Value::Bool(b) => Ok(value(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(value)
            .ok_or_else(|| Error::bad_request(format!("{key}: {n} is not a whole number"))),
        other => Err(Error::bad_request(format!(
            "{key}: {other} is not a string, a number or true/false"
        ))),
    }
}

fn streams(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables> {
    if doc.get("streams").is_none() {
        doc.insert("streams", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc.get_mut("streams")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| {
            Error::bad_request("streams in the config is not a list of [[streams]] tables")
        })
}

fn index_of(list: &ArrayOfTables, id: &str) -> Option<usize> {
    list.iter()
        .position(|t| t.get("id").and_then(Item::as_str) == Some(id))
}

fn check_keys(fields: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::bad_request(format!(
            "{k:?} is not a stream setting here (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `text` with a new `[[streams]]` table for `id` at the end.
pub fn add_stream(text: &str, id: &str, fields: &Map<String, Value>) -> Result<String> {
    check_keys(fields, &STREAM_KEYS)?;
    let mut doc = parse(text)?;
    // Comments at the very end of the file belong where they are: before the new table.
    let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
    doc.set_trailing("");
    let list = streams(&mut doc)?;
    if index_of(list, id).is_some() {
        return Err(Error::new(
            Kind::Conflict,
            format!("a stream {id:?} exists"),
        ));
    }
    let mut t = Table::new();
    t.decor_mut().set_prefix(format!("{trailing}\n"));
    t.insert("id", value(id));
    for key in STREAM_KEYS {
        if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
            t.insert(key, item(key, v)?);
        }
    }
    list.push(t);
    Ok(doc.to_string())
}

/// `text` with the given keys of stream `id` set (`null` removes a key, back to its default).
pub fn patch_stream(text: &str, id: &str, fields: &Map<String, Value>) -> Result<String> {
    check_keys(fields, &STREAM_KEYS)?;
    let mut doc = parse(text)?;
    let list = streams(&mut doc)?;
    let i = index_of(list, id)
        .ok_or_else(|| Error::not_found(format!("no stream {id:?} in the config")))?;
    let t = list
        .get_mut(i)
        .ok_or_else(|| Error::internal("a stream vanished"))?;
    for (key, v) in fields {
        if v.is_null() {
            t.remove(key);
        } else if let Some(existing) = t.get_mut(key) {
            // Keeps the key where it is, with its comment.
            let decor = existing.as_value().map(|x| x.decor().clone());
            *existing = item(key, v)?;
            if let (Some(d), Some(x)) = (decor, existing.as_value_mut()) {
                *x.decor_mut() = d;
            }
        } else {
            t.insert(key, item(key, v)?);
        }
    }
    Ok(doc.to_string())
}

/// `text` without stream `id`. Its recordings stay on disk.
pub fn remove_stream(text: &str, id: &str) -> Result<String> {
    let mut doc = parse(text)?;
    let list = streams(&mut doc)?;
    let i = index_of(list, id)
        .ok_or_else(|| Error::not_found(format!("no stream {id:?} in the config")))?;
    let removed = list.remove(i);
    // Comments above the removed table stay: above the next one, or at the end of the file.
    let above = removed
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .trim_end_matches('\n')
        .to_owned();
    if above.contains('#') {
        match list.get_mut(i) {
            Some(next) => {
                let old = next
                    .decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_owned();
                next.decor_mut().set_prefix(format!("{above}\n{old}"));
            }
            None => {
                let old = doc.trailing().as_str().unwrap_or("").to_owned();
                doc.set_trailing(format!("{above}\n{old}"));
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A config as people write them: comments, blank lines, keys in their own order.
    const SHIPPED: &str = "# wallflower-nvr\n\n[storage]\nrecordings_dir = \"/data/recordings\" # the big disk\n\n\
        # The door, since May.\n[[streams]]\nid = \"front-door\"\nname = \"Front door\"\n\
        url = \"rtsp://192.168.1.20:554/stream1\"\nretention_days = 14\n\n[[streams]]\nid = \"garden\"\n\
        segment_seconds = 600\n\n[[streams]]\nid = \"garage\"\nenabled = false\n";

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// The lines of `a` not in `b`, and of `b` not in `a`.
    fn diff(a: &str, b: &str) -> (Vec<String>, Vec<String>) {
        let only = |x: &str, y: &str| {
            let ys: Vec<&str> = y.lines().collect();
            x.lines()
                .filter(|l| !ys.contains(l))
                .map(str::to_owned)
                .collect()
        };
        (only(a, b), only(b, a))
    }

    #[test]
    fn edits_change_only_their_lines() {
        let added = add_stream(
            SHIPPED,
            "porch",
            &map(json!({"url": "rtsp://10.0.0.9/s", "retention_days": 3})),
        )
        .unwrap();
        assert!(
            added.starts_with(SHIPPED),
            "everything before stays byte for byte"
        );
        assert_eq!(
            &added[SHIPPED.len()..],
            "\n[[streams]]\nid = \"porch\"\nurl = \"rtsp://10.0.0.9/s\"\nretention_days = 3\n"
        );
        let patched = patch_stream(
            &added,
            "front-door",
            &map(json!({"retention_days": 30, "enabled": false})),
        )
        .unwrap();
        // `enabled = false` is already a line of the file (garage), so the diff shows one line.
        assert_eq!(
            diff(&added, &patched),
            (
                vec!["retention_days = 14".into()],
                vec!["retention_days = 30".into()]
            )
        );
        assert_eq!(patched.lines().count(), added.lines().count() + 1);
        assert_eq!(patched.matches("enabled = false").count(), 2);
        let removed = remove_stream(&patched, "porch").unwrap();
        assert_eq!(
            removed,
            patch_stream(
                SHIPPED,
                "front-door",
                &map(json!({"retention_days": 30, "enabled": false}))
            )
            .unwrap()
        );
        let c = crate::config::Config::parse(&removed, std::path::Path::new("x")).unwrap();
        assert_eq!(c.stream("front-door").unwrap().retention_days, 30);
        let back = patch_stream(
            &removed,
            "front-door",
            &map(json!({"retention_days": null})),
        )
        .unwrap();
        assert!(!back.contains("retention_days = 30"));
    }

    #[test]
    fn comments_at_the_end_stay_put_through_an_add_and_a_remove() {
        let text = "[retention]\ndefault_days = 0\n# cameras below; keep this note\n";
        let added = add_stream(text, "a", &map(json!({"url": "rtsp://x/y"}))).unwrap();
        assert!(added.starts_with(text), "{added}");
        let removed = remove_stream(&added, "a").unwrap();
        assert_eq!(removed.trim_end(), text.trim_end());
    }

    #[test]
    fn bad_edits_are_refused() {
        let e = |r: Result<String>| r.unwrap_err().kind;
        assert_eq!(
            e(add_stream(SHIPPED, "garden", &Map::new())),
            Kind::Conflict
        );
        assert_eq!(
            e(patch_stream(SHIPPED, "nope", &Map::new())),
            Kind::NotFound
        );
        assert_eq!(e(remove_stream(SHIPPED, "nope")), Kind::NotFound);
        assert_eq!(
            e(patch_stream(SHIPPED, "garden", &map(json!({"id": "x"})))),
            Kind::BadRequest
        );
        assert_eq!(
            e(add_stream(SHIPPED, "x", &map(json!({"url": [1]})))),
            Kind::BadRequest
        );
        assert_eq!(
            e(add_stream("streams = 3\n", "x", &Map::new())),
            Kind::BadRequest
        );
        assert_eq!(e(add_stream("[[[", "x", &Map::new())), Kind::BadRequest);
    }
}
