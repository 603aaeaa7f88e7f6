//! Generates the published message contracts from the Rust types: one JSON Schema (2020-12) per
//! event type under `events/`, describing the whole CloudEvent with its typed `data`; one per
//! command under `commands/`, describing the command object itself as the executor accepts it
//! (commands are not CloudEvents);
//! and an AsyncAPI 3 document (`asyncapi.yaml`) with one channel per subject.
//! `sreworks generate-schemas` writes them; a test compares them with the committed copies in
//! `proto-schemas/`, file for file, so a stale, missing or left-over file fails it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use sw_contracts::events::{EventSpec, TYPE_PREFIX, catalogue};
use sw_contracts::executor::{K8sApplyCommand, K8sDeleteCommand};

/// The folders whose every file is generated (anything else in them is stale).
const GENERATED_DIRS: [&str; 2] = ["events", "commands"];

/// A command the platform sends to an executor over the work queue `SW_COMMANDS`.
pub struct CommandSpec {
    /// `<executor>.<verb>`; the subject is `sw.cmd.<name>`.
    pub name: &'static str,
    /// What it asks for.
    pub description: &'static str,
    /// Who sends it.
    pub sender: &'static str,
    /// Who takes it.
    pub receiver: &'static str,
    /// The schema of the message body, as a root schema.
    pub body_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

/// Every command (the types live in `sw_contracts::executor`).
pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec {
            name: "k8s.apply",
            description: "Make a cluster hold this revision of a component instance: render its objects, apply them (server-side apply), prune what the previous revision owned and no longer renders, then watch health until the deadline. Refused when older than the last applied revision.",
            sender: "The workflow service sends it when a component instance must be deployed or changed.",
            receiver: "One replica of the k8s-executor takes it from the work queue and reports executor.component.* events.",
            body_schema: |g| g.root_schema_for::<K8sApplyCommand>(),
        },
        CommandSpec {
            name: "k8s.delete",
            description: "Remove every object the component instance owns (per the executor's inventory) and nothing else.",
            sender: "The workflow service sends it when a component instance is removed.",
            receiver: "One replica of the k8s-executor takes it from the work queue and reports executor.component.deleted or .failed.",
            body_schema: |g| g.root_schema_for::<K8sDeleteCommand>(),
        },
    ]
}

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

/// The JSON Schema of one command: the message body is the command object itself, plain JSON.
pub fn command_schema(spec: &CommandSpec) -> Value {
    // What the executor accepts (defaulted members optional), unlike events, whose schemas say what
    // sreworks emits: a command's schema is for whoever writes one, and the executor parses it.
    let mut generator = SchemaSettings::draft2020_12().for_deserialize().into_generator();
    let mut schema = (spec.body_schema)(&mut generator).to_value();
    let type_name = schema["title"].as_str().unwrap_or_default().to_owned();
    let header = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:sreworks:commands:{}", spec.name),
        "title": spec.name,
        "description": format!(
            "{} The whole message body on subject `sw.cmd.{}` of the work-queue stream SW_COMMANDS is this object (`{type_name}`), \
             plain JSON (`Content-Type: application/json`), not a CloudEvent; the `Nats-Msg-Id` header is its `commandId`.",
            spec.description, spec.name
        ),
    });
    // The fixed members first, then the type's own, so the files read top-down.
    let mut ordered = header.as_object().cloned().unwrap_or_default();
    if let Value::Object(body) = &mut schema {
        for (k, v) in std::mem::take(body) {
            if !ordered.contains_key(&k) {
                ordered.insert(k, v);
            }
        }
    }
    Value::Object(ordered)
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
    for spec in commands() {
        let n = spec.name;
        // `cmd.` keeps command channels and messages apart from event ones.
        let key = format!("cmd.{n}");
        channels.insert(
            key.clone(),
            json!({
                "address": format!("sw.cmd.{n}"),
                "description": spec.description,
                "messages": {&key: {"$ref": format!("#/components/messages/{key}")}},
            }),
        );
        operations.insert(
            format!("send.{key}"),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{key}")},
                "summary": spec.sender,
            }),
        );
        operations.insert(
            format!("receive.{key}"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{key}")},
                "summary": spec.receiver,
            }),
        );
        messages.insert(
            key.clone(),
            json!({
                "name": key,
                "title": format!("{n} command"),
                "summary": spec.description,
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CommandHeaders"},
                "payload": {"$ref": format!("./commands/{n}.json")},
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "sreworks events and commands",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event sreworks publishes. Events are CloudEvents 1.0 in JSON structured mode, stored in the JetStream stream SW_EVENTS (subjects sw.events.>; with a custom prefix P, stream P_EVENTS and subjects P.events.>). Attach a durable consumer to receive them; Nats-Msg-Id is the event id, so JetStream drops duplicates within its 2-minute window. Commands to executors (channels cmd.*) are plain JSON objects, not CloudEvents, in the work-queue stream SW_COMMANDS (subjects sw.cmd.>; P_COMMANDS and P.cmd.> with prefix P): the workflow sends them, one replica of the executor takes each through the executor's durable consumer, and the stream deletes it once acked. Nats-Msg-Id is the commandId.",
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
                },
                "CommandHeaders": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {"type": "string", "description": "The commandId (JetStream de-duplication within 2 minutes; the executor's inbox key)."},
                        "traceparent": {"type": "string", "pattern": TRACEPARENT_PATTERN},
                        "Content-Type": {"const": "application/json"},
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
    for spec in commands() {
        let text = serde_json::to_string_pretty(&command_schema(&spec))? + "\n";
        files.insert(PathBuf::from("commands").join(format!("{}.json", spec.name)), text);
    }
    let yaml = serde_yaml::to_string(&asyncapi()).context("rendering asyncapi.yaml")?;
    files.insert(
        PathBuf::from("asyncapi.yaml"),
        format!("# Generated by `sreworks generate-schemas` from the Rust types; do not edit.\n{yaml}"),
    );
    Ok(files)
}

/// Files in the generated folders under `dir`, relative to `dir`.
fn generated_dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for sub in GENERATED_DIRS {
        let entries = match std::fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            found.push(PathBuf::from(sub).join(entry?.file_name()));
        }
    }
    Ok(found)
}

/// Writes every file under `out_dir`, removing files of the generated folders that are not
/// generated any more. Returns the count written.
pub fn write(out_dir: &Path) -> anyhow::Result<usize> {
    let files = render()?;
    for sub in GENERATED_DIRS {
        std::fs::create_dir_all(out_dir.join(sub))?;
    }
    for rel in generated_dir_files(out_dir)? {
        if !files.contains_key(&rel) {
            std::fs::remove_file(out_dir.join(&rel))
                .with_context(|| format!("removing {}", rel.display()))?;
        }
    }
    for (rel, text) in &files {
        std::fs::write(out_dir.join(rel), text).with_context(|| format!("writing {}", rel.display()))?;
    }
    Ok(files.len())
}

/// How the files under `dir` differ from what the code generates, one line per file (empty when
/// they match): stale or missing files, and files of the generated folders nothing generates.
pub fn drift(dir: &Path) -> anyhow::Result<Vec<String>> {
    let files = render()?;
    let mut problems = Vec::new();
    for (rel, text) in &files {
        match std::fs::read_to_string(dir.join(rel)) {
            Ok(committed) if committed == *text => {}
            Ok(_) => problems.push(format!("{} is stale", rel.display())),
            Err(_) => problems.push(format!("{} is missing", rel.display())),
        }
    }
    for rel in generated_dir_files(dir)? {
        if !files.contains_key(&rel) {
            problems.push(format!("{} is not generated any more", rel.display()));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto-schemas")
    }

    /// A scratch folder of this test's own, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let p = std::env::temp_dir().join(format!("sw-schemas-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The committed schemas are exactly what the code generates (`make schemas` regenerates them).
    #[test]
    fn committed_schemas_have_not_drifted() {
        let problems = drift(&committed_dir()).unwrap();
        assert!(
            problems.is_empty(),
            "proto-schemas/ differs from the code; run `make schemas` and commit:\n{}",
            problems.join("\n")
        );
    }

    /// The drift check catches each way a committed copy can go wrong, and `write` repairs them.
    #[test]
    fn drift_catches_stale_missing_and_extra_files_and_write_repairs_them() {
        let dir = Scratch::new("drift");
        write(&dir.0).unwrap();
        assert_eq!(drift(&dir.0).unwrap(), Vec::<String>::new());

        let apply = dir.0.join("commands/k8s.apply.json");
        std::fs::write(&apply, "{}\n").unwrap();
        std::fs::remove_file(dir.0.join("commands/k8s.delete.json")).unwrap();
        std::fs::write(dir.0.join("commands/k8s.restart.json"), "{}\n").unwrap();
        std::fs::write(dir.0.join("events/appmeta.app.renamed.json"), "{}\n").unwrap();
        let mut problems = drift(&dir.0).unwrap();
        problems.sort();
        assert_eq!(
            problems,
            [
                "commands/k8s.apply.json is stale",
                "commands/k8s.delete.json is missing",
                "commands/k8s.restart.json is not generated any more",
                "events/appmeta.app.renamed.json is not generated any more",
            ]
        );

        write(&dir.0).unwrap();
        assert_eq!(drift(&dir.0).unwrap(), Vec::<String>::new());
        assert!(!dir.0.join("commands/k8s.restart.json").exists());
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

    /// Each command has a channel that the workflow sends on and the executor receives from, and
    /// its schema describes the bare command object with every field the executor relies on.
    #[test]
    fn every_command_has_a_channel_send_and_receive_and_a_body_schema() {
        let doc = asyncapi();
        let names: Vec<_> = commands().iter().map(|c| c.name).collect();
        assert_eq!(names, ["k8s.apply", "k8s.delete"]);
        for spec in commands() {
            let key = format!("cmd.{}", spec.name);
            assert_eq!(doc["channels"][&key]["address"], format!("sw.cmd.{}", spec.name));
            let channel_ref = json!({"$ref": format!("#/channels/{key}")});
            assert_eq!(doc["operations"][format!("send.{key}")]["action"], "send");
            assert_eq!(doc["operations"][format!("send.{key}")]["channel"], channel_ref);
            assert_eq!(doc["operations"][format!("receive.{key}")]["action"], "receive");
            assert_eq!(doc["components"]["messages"][&key]["contentType"], "application/json");
            assert_eq!(
                doc["components"]["messages"][&key]["payload"]["$ref"],
                format!("./commands/{}.json", spec.name)
            );

            let s = command_schema(&spec);
            assert_eq!(s["$id"], format!("urn:sreworks:commands:{}", spec.name));
            assert_eq!(s["type"], "object");
            assert!(s["properties"].get("specversion").is_none(), "a command is not a CloudEvent");
            let required: Vec<_> =
                s["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            for field in [
                "commandId",
                "clusterId",
                "namespace",
                "appId",
                "appInstance",
                "componentInstance",
                "revision",
            ] {
                assert!(required.contains(&field), "{}: {field} must be required", spec.name);
            }
        }
        let apply = command_schema(&commands()[0]);
        assert!(apply["required"].as_array().unwrap().contains(&json!("component")));
        assert!(apply["required"].as_array().unwrap().contains(&json!("healthDeadlineSecs")));
    }

    fn target() -> sw_contracts::executor::ComponentTarget {
        sw_contracts::executor::ComponentTarget {
            cluster_id: "master".into(),
            namespace: "health".into(),
            app_id: sw_contracts::ids::AppId::parse("health").unwrap(),
            stage_id: Some("prod".into()),
            app_instance: "health-prod".into(),
            component_instance: "health".into(),
        }
    }

    fn errors(schema: &Value, body: &Value) -> Vec<String> {
        let validator = jsonschema::validator_for(schema).unwrap();
        validator.iter_errors(body).map(|e| e.to_string()).collect()
    }

    /// The published schemas accept what the Rust types send and reject what the executor could
    /// not take: a missing id, a revision that is not a count, a command wrapped in a CloudEvent.
    #[test]
    fn the_command_schemas_accept_the_rust_types_and_reject_malformed_bodies() {
        let [apply_spec, delete_spec] = <[CommandSpec; 2]>::try_from(commands()).ok().unwrap();
        let (apply_schema, delete_schema) = (command_schema(&apply_spec), command_schema(&delete_spec));
        let apply = serde_json::to_value(K8sApplyCommand {
            command_id: "c-1".into(),
            target: target(),
            revision: 3,
            health_deadline_secs: 300,
            component: sw_contracts::executor::RenderedComponent {
                component_type: "K8S_MICROSERVICE".into(),
                component_name: "health".into(),
                package_version: Some("1.0.0".into()),
                workload: json!({"kind": "Deployment", "replicas": 2}),
                traits: vec![sw_contracts::executor::TraitSpec {
                    name: "service.trait.abm.io".into(),
                    runtime: Some("post".into()),
                    spec: json!({"ports": [{"port": 80, "targetPort": 7001}]}),
                }],
            },
        })
        .unwrap();
        assert_eq!(errors(&apply_schema, &apply), Vec::<String>::new());
        let delete = serde_json::to_value(K8sDeleteCommand {
            command_id: "c-2".into(),
            target: target(),
            revision: 4,
        })
        .unwrap();
        assert_eq!(errors(&delete_schema, &delete), Vec::<String>::new());

        // Each body: the schema accepts it exactly when the executor's type parses it.
        let mut minimal = apply.clone();
        for optional in ["stageId", "packageVersion"] {
            minimal.as_object_mut().unwrap().remove(optional);
        }
        minimal["component"].as_object_mut().unwrap().remove("traits");
        let mut no_id = apply.clone();
        no_id.as_object_mut().unwrap().remove("commandId");
        let mut no_deadline = apply.clone();
        no_deadline.as_object_mut().unwrap().remove("healthDeadlineSecs");
        let mut bad_revision = apply.clone();
        bad_revision["revision"] = json!(-1);
        let wrapped = json!({"specversion": "1.0", "id": "c-1", "type": "k8s.apply", "data": apply});
        for (what, body, valid) in [
            ("defaulted members left out", &minimal, true),
            ("no commandId", &no_id, false),
            ("no healthDeadlineSecs", &no_deadline, false),
            ("a negative revision", &bad_revision, false),
            ("a delete", &delete, false),
            ("a CloudEvent around the command", &wrapped, false),
        ] {
            let parses = serde_json::from_value::<K8sApplyCommand>(body.clone()).is_ok();
            assert_eq!(parses, valid, "{what}: the executor's type");
            assert_eq!(errors(&apply_schema, body).is_empty(), valid, "{what}: the published schema");
        }
    }
}
