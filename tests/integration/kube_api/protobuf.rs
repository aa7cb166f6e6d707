//! Just enough of the Kubernetes protobuf encoding to read the bodies
//! kubectl's typed clients send: `kubectl create secret|configmap|namespace`
//! post `application/vnd.kubernetes.protobuf`, and kubectl 1.32 does not fall
//! back to JSON on 415. Responses are always JSON, which client-go accepts.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The envelope's magic prefix.
const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// All (field number, value) pairs of a message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let bad = || "truncated protobuf".to_string();
    let (mut pos, mut out) = (0, Vec::new());
    while pos < buf.len() {
        let tag = varint(buf, &mut pos).ok_or_else(bad)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(buf, &mut pos).ok_or_else(bad)?),
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos).ok_or_else(bad)?).map_err(|_| bad())?;
                let bytes = buf.get(pos..pos + len).ok_or_else(bad)?;
                pos += len;
                Wire::Bytes(bytes)
            }
            1 => {
                pos += 8;
                continue;
            }
            5 => {
                pos += 4;
                continue;
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        out.push((tag >> 3, wire));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Value {
    json!(String::from_utf8_lossy(bytes))
}

/// A `map<string, string|bytes>` field from its repeated entries.
fn map_field(entries: &[&[u8]], bytes_values: bool) -> Result<Value, String> {
    let mut out = Map::new();
    for entry in entries {
        let (mut key, mut value) = (String::new(), Vec::new());
        for (n, w) in fields(entry)? {
            match (n, w) {
                (1, Wire::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
                (2, Wire::Bytes(b)) => value = b.to_vec(),
                _ => {}
            }
        }
        let value = if bytes_values {
            json!(base64::engine::general_purpose::STANDARD.encode(value))
        } else {
            text(&value)
        };
        out.insert(key, value);
    }
    Ok(Value::Object(out))
}

/// Repeated length-delimited values of field `n`.
fn all<'a>(fs: &[(u64, Wire<'a>)], n: u64) -> Vec<&'a [u8]> {
    fs.iter()
        .filter_map(|(k, w)| match w {
            Wire::Bytes(b) if *k == n => Some(*b),
            _ => None,
        })
        .collect()
}

fn object_meta(buf: &[u8]) -> Result<Value, String> {
    let fs = fields(buf)?;
    let mut meta = Map::new();
    // gogo-protobuf writes empty strings out; JSON omits them.
    for (n, name) in [(1, "name"), (2, "generateName"), (3, "namespace")] {
        if let Some(b) = all(&fs, n).first().filter(|b| !b.is_empty()) {
            meta.insert(name.into(), text(b));
        }
    }
    for (n, name) in [(11, "labels"), (12, "annotations")] {
        let entries = all(&fs, n);
        if !entries.is_empty() {
            meta.insert(name.into(), map_field(&entries, false)?);
        }
    }
    let finalizers: Vec<Value> = all(&fs, 14).into_iter().map(text).collect();
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(finalizers));
    }
    Ok(Value::Object(meta))
}

/// Decode an enveloped Secret, ConfigMap or Namespace into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("missing protobuf envelope")?;
    let envelope = fields(rest)?;
    let type_meta = fields(all(&envelope, 1).first().ok_or("missing typeMeta")?)?;
    let api_version = all(&type_meta, 1)
        .first()
        .map(|b| text(b))
        .unwrap_or(Value::Null);
    let kind = all(&type_meta, 2)
        .first()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let raw = fields(all(&envelope, 2).first().ok_or("missing raw object")?)?;
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    if let Some(meta) = all(&raw, 1).first() {
        obj["metadata"] = object_meta(meta)?;
    }
    match kind.as_str() {
        "Secret" => {
            obj["data"] = map_field(&all(&raw, 2), true)?;
            if let Some(t) = all(&raw, 3).first().filter(|t| !t.is_empty()) {
                obj["type"] = text(t);
            }
            let string_data = all(&raw, 4);
            if !string_data.is_empty() {
                obj["stringData"] = map_field(&string_data, false)?;
            }
        }
        "ConfigMap" => {
            obj["data"] = map_field(&all(&raw, 2), false)?;
            let binary = all(&raw, 3);
            if !binary.is_empty() {
                obj["binaryData"] = map_field(&binary, true)?;
            }
        }
        "Namespace" => {}
        other => {
            return Err(format!(
                "protobuf bodies of kind {other:?} are not supported; send JSON"
            ))
        }
    }
    for (n, field) in [(5u64, "immutable"), (4, "immutable")] {
        let applies = (kind == "Secret" && n == 5) || (kind == "ConfigMap" && n == 4);
        if let Some((_, Wire::Varint(v))) = raw.iter().find(|(k, _)| *k == n).filter(|_| applies) {
            obj[field] = json!(*v != 0);
        }
    }
    Ok(obj)
}
