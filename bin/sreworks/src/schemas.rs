//! Generates the published event contracts from the Rust types: one JSON Schema (2020-12) per event
//! type under `events/`, describing the whole CloudEvent with its typed `data`, and an AsyncAPI 3
//! document (`asyncapi.yaml`) with one channel per subject. `sreworks generate-schemas` writes them;
//! a test compares them with the committed copies in `proto-schemas/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use sw_contracts::events::{EventSpec, TYPE_PREFIX, catalogue};

/// W3C traceparent syntax.
const TRACEPARENT_PATTERN: &str = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$";

/// The JSON Schema of one event type.
pub fn event_schema(spec: &EventSpec) -> Value {
    let mut generator = SchemaSettings::draft2020_12().for_serialize().into_generator();
    let data = (spec.data_schema)(&mut generator);
    let defs = generator.take_definitions(true);
    let service = spec.name.split('.').next().unwrap_or_default();
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:sreworks:events:{}", spec.name),
        "title": spec.name,
        "description": format!("{} CloudEvents 1.0, JSON structured mode, on subject `sw.events.{}` of stream SW_EVENTS.", spec.description, spec.name),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "Unique event id; also the Nats-Msg-Id header."},
            "source": {"const": format!("/sreworks/{service}")},
            "type": {"const": format!("{TYPE_PREFIX}{}", spec.name)},
            "subject": {"type": "string", "description": "Id of the resource the event is about."},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "traceparent": {"type": "string", "pattern": TRACEPARENT_PATTERN, "description": "W3C trace context of the causing request."},
            "data": data.to_value(),
        },
    });
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

/// The AsyncAPI 3.0 document.
pub fn asyncapi() -> Value {
    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    for spec in catalogue() {
        let n = spec.name;
        channels.insert(
            n.into(),
            json!({
                "address": format!("sw.events.{n}"),
                "description": spec.description,
                "messages": {n: {"$ref": format!("#/components/messages/{n}")}},
            }),
        );
        operations.insert(
            format!("receive.{n}"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{n}")},
                "summary": spec.description,
            }),
        );
        messages.insert(
            n.into(),
            json!({
                "name": n,
                "title": format!("{TYPE_PREFIX}{n}"),
                "summary": spec.description,
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": "#/components/schemas/NatsHeaders"},
                "payload": {"$ref": format!("./events/{n}.json")},
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "sreworks events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event sreworks publishes. Events are CloudEvents 1.0 in JSON structured mode, stored in the JetStream stream SW_EVENTS (subjects sw.events.>; with a custom prefix P, stream P_EVENTS and subjects P.events.>). Attach a durable consumer to receive them; Nats-Msg-Id is the event id, so JetStream drops duplicates within its 2-minute window.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "NATS with JetStream, as started by `make up`."}
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "NatsHeaders": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {"type": "string", "description": "The event id (JetStream de-duplication)."},
                        "traceparent": {"type": "string", "pattern": TRACEPARENT_PATTERN},
                        "Content-Type": {"const": "application/cloudevents+json"},
                    },
                    "required": ["Nats-Msg-Id"],
                }
            }
        }
    })
}

/// Every generated file, by path relative to the output folder.
pub fn render() -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let mut files = BTreeMap::new();
    for spec in catalogue() {
        let text = serde_json::to_string_pretty(&event_schema(&spec))? + "\n";
        files.insert(PathBuf::from("events").join(format!("{}.json", spec.name)), text);
    }
    let yaml = serde_yaml::to_string(&asyncapi()).context("rendering asyncapi.yaml")?;
    files.insert(
        PathBuf::from("asyncapi.yaml"),
        format!("# Generated by `sreworks generate-schemas` from the Rust types; do not edit.\n{yaml}"),
    );
    Ok(files)
}

/// Writes every file under `out_dir`, removing event schemas that no longer exist. Returns the count.
pub fn write(out_dir: &Path) -> anyhow::Result<usize> {
    let files = render()?;
    let events = out_dir.join("events");
    std::fs::create_dir_all(&events)?;
    for entry in std::fs::read_dir(&events)? {
        let p = entry?.path();
        let rel = PathBuf::from("events").join(p.file_name().unwrap_or_default());
        if p.extension().is_some_and(|e| e == "json") && !files.contains_key(&rel) {
            std::fs::remove_file(&p)?;
        }
    }
    for (rel, text) in &files {
        std::fs::write(out_dir.join(rel), text).with_context(|| format!("writing {}", rel.display()))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto-schemas")
    }

    /// The committed schemas are exactly what the code generates (`make schemas` regenerates them).
    #[test]
    fn committed_schemas_have_not_drifted() {
        let files = render().unwrap();
        let dir = committed_dir();
        for (rel, text) in &files {
            let committed = std::fs::read_to_string(dir.join(rel)).unwrap_or_default();
            assert!(
                committed == *text,
                "proto-schemas/{} is stale: run `make schemas` and commit",
                rel.display()
            );
        }
        let on_disk: Vec<_> = std::fs::read_dir(dir.join("events"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| PathBuf::from("events").join(e.file_name())).collect())
            .unwrap_or_default();
        for p in on_disk {
            assert!(
                files.contains_key(&p),
                "proto-schemas/{} is not generated any more: delete it",
                p.display()
            );
        }
    }

    #[test]
    fn every_event_has_a_channel_and_a_schema() {
        let doc = asyncapi();
        for spec in catalogue() {
            assert_eq!(doc["channels"][spec.name]["address"], format!("sw.events.{}", spec.name));
            let s = event_schema(&spec);
            assert_eq!(s["properties"]["type"]["const"], format!("sreworks.{}", spec.name));
        }
    }
}
