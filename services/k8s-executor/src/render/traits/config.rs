//! `configmap`, `secret` and `volume`/`pvc`: an object next to the workload, mounted at `mountPath`
//! into (or, for ConfigMaps and Secrets, loaded with `envFrom: true` as env by) every container, or
//! only `containerName`.
//!
//! Each is named `<workload>-<name>` (`name` defaults to `config`, `secret`, `data`), which is also
//! the pod volume's name. Secrets are always written as base64 `data` — `stringData` is encoded here
//! — so the applied object is the same on every render and nothing re-appears as `stringData` in the
//! server's managed fields. Secret values never reach an error message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::{Ctx, Default, Kind, targets};
use crate::render::check::{At, Obj, Problems, object, quantity, scalar, scalar_map};
use crate::render::names::{MAX_NAME_LEN, is_dns1123_label, object_name};
use crate::render::workload::Pod;

const CONFIGMAP_FIELDS: &[&str] = &["name", "data", "mountPath", "envFrom", "containerName"];
const SECRET_FIELDS: &[&str] =
    &["name", "data", "stringData", "type", "mountPath", "envFrom", "containerName"];
const VOLUME_FIELDS: &[&str] =
    &["name", "size", "mountPath", "storageClassName", "accessModes", "readOnly", "containerName"];
const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];

/// The object for a `configmap`, `secret` or `volume` trait; mounts and env go into `pod`.
/// `names` holds the object names of earlier such traits (they are also pod volume names).
pub(super) fn config(
    kind: Kind,
    spec: &Value,
    at: &At,
    pod: &mut Pod,
    ctx: &Ctx<'_>,
    names: &mut Vec<String>,
    p: &mut Problems,
) -> Option<Value> {
    let map = object(p, at, spec)?;
    let o = Obj { map, at };
    let (fields, default_name) = match kind {
        Kind::ConfigMap => (CONFIGMAP_FIELDS, "config"),
        Kind::Secret => (SECRET_FIELDS, "secret"),
        _ => (VOLUME_FIELDS, "data"),
    };
    o.only(p, fields);
    let suffix = o.string(p, "name").unwrap_or_else(|| default_name.into());
    if !is_dns1123_label(&suffix) {
        p.add(&at.key("name"), "must be a DNS-1123 label");
        return None;
    }
    let name = object_name(&[ctx.base, &suffix], MAX_NAME_LEN);
    if names.contains(&name) {
        p.add(
            &at.key("name"),
            format!("'{suffix}' is already used by another configmap, secret or volume trait"),
        );
        return None;
    }
    names.push(name.clone());
    let mount_path = o.string(p, "mountPath");
    if let Some(m) = &mount_path
        && !m.starts_with('/')
    {
        p.add(&at.key("mountPath"), "must be an absolute path");
    }
    let (object, volume_source, read_only) = match kind {
        Kind::ConfigMap => {
            let data = o.required(p, "data").and_then(|v| scalar_map(p, &at.key("data"), v))?;
            check_keys(p, &at.key("data"), data.keys());
            let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k, v.into())).collect();
            let obj = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": data });
            (obj, json!({ "configMap": { "name": name } }), true)
        }
        Kind::Secret => {
            let obj = secret(o, &name, p)?;
            (obj, json!({ "secret": { "secretName": name } }), true)
        }
        _ => {
            if mount_path.is_none() {
                o.required(p, "mountPath");
            }
            let obj = pvc(o, &name, p)?;
            let read_only = o.boolean(p, "readOnly").unwrap_or(false);
            (obj, json!({ "persistentVolumeClaim": { "claimName": name } }), read_only)
        }
    };
    let env_from = kind != Kind::Volume && o.boolean(p, "envFrom").unwrap_or(false);
    if mount_path.is_some() {
        let mut volume = Map::new();
        volume.insert("name".into(), name.clone().into());
        if let Value::Object(src) = volume_source {
            volume.extend(src);
        }
        pod.volumes.push(Value::Object(volume));
    }
    if mount_path.is_none() && !env_from {
        return Some(object);
    }
    for c in targets(o, pod, Default::All, p) {
        if let Some(path) = &mount_path {
            let taken = c.extra.get("volumeMounts").and_then(Value::as_array).is_some_and(|ms| {
                ms.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(path))
            });
            if taken {
                p.add(&at.key("mountPath"), format!("container '{}' already mounts something there", c.name));
            } else {
                let mut mount = json!({ "name": name, "mountPath": path });
                if read_only {
                    mount["readOnly"] = true.into();
                }
                c.push("volumeMounts", mount);
            }
        }
        if env_from {
            let source = if kind == Kind::Secret { "secretRef" } else { "configMapRef" };
            c.push("envFrom", json!({ source: { "name": name } }));
        }
    }
    Some(object)
}

/// ConfigMap and Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn check_keys<'k>(p: &mut Problems, at: &At, keys: impl Iterator<Item = &'k String>) {
    for k in keys {
        let ok = !k.is_empty()
            && k.len() <= 253
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && k != "."
            && k != "..";
        if !ok {
            p.add(&at.key(k), "is not a valid key (letters, digits, '-', '_', '.')");
        }
    }
}

/// `data` (base64) and `stringData` (text) merged into base64 `data`; `type` (Opaque).
fn secret(o: Obj<'_, '_>, name: &str, p: &mut Problems) -> Option<Value> {
    let mut data = std::collections::BTreeMap::new();
    if let Some(m) = o.object(p, "data") {
        for (k, v) in m {
            let at = o.at.key("data").key(k);
            // Never echo the value: it is a secret even when malformed.
            match v.as_str().map(|s| STANDARD.decode(s.trim())) {
                Some(Ok(bytes)) => {
                    data.insert(k.clone(), STANDARD.encode(bytes));
                }
                _ => p.add(&at, "is not valid base64 (use stringData for plain text)"),
            }
        }
    }
    if let Some(m) = o.object(p, "stringData") {
        for (k, v) in m {
            let at = o.at.key("stringData").key(k);
            if data.contains_key(k) {
                p.add(&at, "is also given in data");
            } else if let Some(text) = scalar(&mut Problems::default(), &at, v) {
                data.insert(k.clone(), STANDARD.encode(text));
            } else {
                p.add(&at, "must be a string, number or boolean");
            }
        }
    }
    if o.get("data").is_none() && o.get("stringData").is_none() {
        p.add(o.at, "needs data or stringData");
        return None;
    }
    check_keys(p, &o.at.key("data"), data.keys());
    let ty = o.string(p, "type").unwrap_or_else(|| "Opaque".into());
    if ty.is_empty() {
        p.add(&o.at.key("type"), "must not be empty");
    }
    let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k, v.into())).collect();
    Some(
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name }, "type": ty, "data": data }),
    )
}

/// `size`, `storageClassName`, `accessModes` (ReadWriteOnce).
fn pvc(o: Obj<'_, '_>, name: &str, p: &mut Problems) -> Option<Value> {
    let size = o.required(p, "size").and_then(|v| quantity(p, &o.at.key("size"), v))?;
    let modes: Vec<Value> = match o.array(p, "accessModes") {
        Some(items) if items.is_empty() => {
            p.add(&o.at.key("accessModes"), "must list at least one mode");
            return None;
        }
        Some(items) => {
            let mut modes = Vec::new();
            for (i, m) in items.iter().enumerate() {
                match m.as_str() {
                    Some(s) if ACCESS_MODES.contains(&s) => modes.push(Value::from(s)),
                    _ => p.add(
                        &o.at.key("accessModes").index(i),
                        format!("must be one of {}", ACCESS_MODES.join(", ")),
                    ),
                }
            }
            modes
        }
        None => vec!["ReadWriteOnce".into()],
    };
    let mut spec = Map::new();
    spec.insert("accessModes".into(), modes.into());
    spec.insert("resources".into(), json!({ "requests": { "storage": size } }));
    if let Some(class) = o.string(p, "storageClassName") {
        spec.insert("storageClassName".into(), class.into());
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": { "name": name },
        "spec": spec,
    }))
}
