//! The resolver's rules on small launch files: placement precedence, globals and templates,
//! `toFieldPaths`, and the errors.

use serde_json::{Value, json};
use sw_appconf::{
    ApplicationConfiguration, Outcome, Overrides, PackagedComponent, ProblemKind, ResolveError, Resolved,
    resolve,
};
use sw_contracts::AppId;

fn workload() -> Value {
    json!({
        "apiVersion": "apps.abm.io/v1",
        "kind": "Microservice",
        "metadata": { "name": "PLACEHOLDER_NAME", "labels": { "stageId": "PLACEHOLDER_STAGE_ID" } },
        "spec": {
            "kind": "Deployment",
            "replicas": 3,
            "env": { "HOST": "{{ Global.DB_HOST }}", "STAGE": "{{Global.STAGE_ID}}" },
            "containers": [{ "name": "app", "image": "img:1" }],
        },
    })
}

fn ac(text: &str) -> ApplicationConfiguration {
    ApplicationConfiguration::from_yaml(&format!(
        "apiVersion: core.oam.dev/v1alpha2\nkind: ApplicationConfiguration\n{text}"
    ))
    .unwrap()
}

fn run(ac: &ApplicationConfiguration, o: &Overrides) -> Result<Resolved, ResolveError> {
    let w = workload();
    let pkg = PackagedComponent { package_version: "1.0.0", workload: &w };
    match resolve(ac, &ac.spec.components[0], Some(pkg), o)? {
        Outcome::Deploy(r) => Ok(*r),
        Outcome::Skip { reason } => panic!("skipped: {reason}"),
    }
}

const PLACED: &str = "
metadata:
  annotations: { appId: demo, clusterId: c-ann, namespaceId: ns-ann, stageId: s-ann }
spec:
  parameterValues:
  - { name: DB_HOST, value: 'db.{{ Global.NAMESPACE_ID }}' }
";

#[test]
fn placement_overrides_beat_component_fields_and_scopes_which_beat_annotations() {
    // Annotations only.
    let a = ac(&format!("{PLACED}  components:\n  - revisionName: K8S_MICROSERVICE|web|_\n"));
    let r = run(&a, &Overrides::default()).unwrap();
    let t = &r.target;
    assert_eq!(
        (t.cluster_id.as_str(), t.namespace.as_str(), t.stage_id.as_deref()),
        ("c-ann", "ns-ann", Some("s-ann"))
    );
    assert_eq!((t.app_instance.as_str(), t.component_instance.as_str()), ("s-ann-demo", "web"));

    // Scopes beat annotations; a scope name may use the app-wide globals.
    let scoped = ac(&format!(
        "{PLACED}  components:
  - revisionName: K8S_MICROSERVICE|web|_
    scopes:
    - scopeRef: {{ kind: Cluster, name: c-scope }}
    - scopeRef: {{ kind: Namespace, name: '{{{{ Global.STAGE_ID }}}}-ns' }}
    - scopeRef: {{ kind: Stage, name: '' }}
"
    ));
    let r = run(&scoped, &Overrides::default()).unwrap();
    let t = &r.target;
    assert_eq!(
        (t.cluster_id.as_str(), t.namespace.as_str(), t.stage_id.as_deref()),
        ("c-scope", "s-ann-ns", Some("s-ann"))
    );
    assert_eq!(r.component.workload["env"]["HOST"], "db.s-ann-ns");

    // Component fields beat scopes.
    let fields = ac(&format!(
        "{PLACED}  components:
  - revisionName: K8S_MICROSERVICE|web|_
    clusterId: c-field
    namespaceId: ''
    scopes:
    - scopeRef: {{ kind: Cluster, name: c-scope }}
    - scopeRef: {{ kind: Namespace, name: ns-scope }}
"
    ));
    let r = run(&fields, &Overrides::default()).unwrap();
    assert_eq!((r.target.cluster_id.as_str(), r.target.namespace.as_str()), ("c-field", "ns-scope"));

    // Overrides beat everything, and the built-ins follow the placement.
    let o = Overrides {
        cluster: Some("c-o".into()),
        namespace: Some("ns-o".into()),
        stage: Some("s-o".into()),
        app_instance: Some("inst".into()),
        app_id: Some(AppId::parse("other").unwrap()),
    };
    let r = run(&fields, &o).unwrap();
    let t = &r.target;
    assert_eq!(
        (
            t.cluster_id.as_str(),
            t.namespace.as_str(),
            t.stage_id.as_deref(),
            t.app_instance.as_str(),
            t.app_id.as_str()
        ),
        ("c-o", "ns-o", Some("s-o"), "inst", "other")
    );
    assert_eq!(r.component.workload["env"], json!({ "HOST": "db.ns-o", "STAGE": "s-o" }));
}

#[test]
fn missing_placement_is_named() {
    let a = ac(
        "metadata: { annotations: { appId: demo } }\nspec:\n  components:\n  - revisionName: K8S_JOB|j|_\n",
    );
    let e = run(&a, &Overrides::default()).unwrap_err();
    assert_eq!(
        e,
        ResolveError::MissingPlacement {
            component: "K8S_JOB|j".into(),
            missing: vec!["cluster", "namespace"]
        }
    );
    assert!(e.to_string().contains("no cluster and no namespace"), "{e}");
    // A scope naming an unset built-in is the same missing placement, not an unresolved reference.
    let a = ac(
        "metadata: { annotations: { appId: demo, clusterId: c } }\nspec:\n  components:\n  - revisionName: K8S_JOB|j|_\n    scopes: [{ scopeRef: { kind: Namespace, name: '{{ Global.NAMESPACE_ID }}' } }]\n",
    );
    assert!(matches!(run(&a, &Overrides::default()).unwrap_err(), ResolveError::MissingPlacement { .. }));
    let e =
        run(&ac("spec:\n  components:\n  - revisionName: K8S_JOB|j|_\n"), &Overrides::default()).unwrap_err();
    assert_eq!(e, ResolveError::NoAppId);
}

#[test]
fn parameter_values_reach_their_field_paths_and_globals() {
    let a = ac(&format!(
        "{PLACED}  components:
  - revisionName: K8S_MICROSERVICE|web|_
    parameterValues:
    - {{ name: REPLICAS, value: 1, toFieldPaths: [spec.replicas] }}
    - {{ name: IMAGE, value: 'img:{{{{ Global.STAGE_ID }}}}', toFieldPaths: ['spec.containers[0].image'] }}
    - {{ name: Global.DB_HOST, value: '{{{{ Global.DB_HOST }}}}-replica' }}
    - {{ name: Global.EXTRA, value: x, toFieldPaths: [spec.env.EXTRA, metadata.name] }}
    - {{ name: UNUSED, value: 1 }}
"
    ));
    let r = run(&a, &Overrides::default()).unwrap();
    let w = &r.component.workload;
    assert_eq!(w["replicas"], 1);
    assert_eq!(w["containers"][0]["image"], "img:s-ann");
    // The component's `Global.DB_HOST` extends the app-wide one.
    assert_eq!(w["env"], json!({ "HOST": "db.ns-ann-replica", "STAGE": "s-ann", "EXTRA": "x" }));
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("'UNUSED'"), "{:?}", r.warnings);
    assert!(r.warnings[1].contains("metadata.name"), "{:?}", r.warnings);

    let bad = ac(&format!(
        "{PLACED}  components:\n  - revisionName: K8S_MICROSERVICE|web|_\n    parameterValues:\n    - {{ name: X, value: 1, toFieldPaths: [spec.kind.deep] }}\n"
    ));
    let e = run(&bad, &Overrides::default()).unwrap_err();
    assert!(matches!(&e, ResolveError::FieldPath { parameter, .. } if parameter == "X"), "{e}");
}

#[test]
fn builtins_win_over_parameter_values_with_a_warning() {
    let a = ac(
        "metadata: { annotations: { appId: demo, clusterId: c, namespaceId: ns } }
spec:
  parameterValues: [{ name: STAGE_ID, value: dev }, { name: CLUSTER_ID, value: '' }, { name: DB_HOST, value: h }]
  components:
  - revisionName: K8S_MICROSERVICE|web|_
",
    );
    // Without another source, the parameter is the stage…
    let r = run(&a, &Overrides::default()).unwrap();
    assert_eq!(r.target.stage_id.as_deref(), Some("dev"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // …and a given stage wins, saying so; an empty placeholder is not worth a warning.
    let r = run(&a, &Overrides { stage: Some("prod".into()), ..Overrides::default() }).unwrap();
    assert_eq!(r.component.workload["env"]["STAGE"], "prod");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("'STAGE_ID' = 'dev' is ignored"), "{:?}", r.warnings);
}

#[test]
fn every_unresolved_reference_is_listed_with_where_it_is_used() {
    let a = ac("metadata: { annotations: { appId: demo, clusterId: c, namespaceId: ns } }
spec:
  parameterValues:
  - { name: DB_HOST, value: '{{ Global.DB_ZONE }}.db' }
  - { name: A, value: '{{ Global.B }}' }
  - { name: B, value: '{{ Global.A }}' }
  components:
  - revisionName: K8S_MICROSERVICE|web|_
    parameterValues:
    - { name: P, value: '{{ Global.A }}', toFieldPaths: [spec.p] }
    traits:
    - name: gateway.trait.abm.io
      spec: { serviceName: '{{ Global.SVC }}', path: '{{ Global.SVC }}/{{ options.x }}' }
");
    let e = run(&a, &Overrides::default()).unwrap_err();
    let ResolveError::Unresolved { component, problems } = &e else { panic!("{e}") };
    assert_eq!(component, "K8S_MICROSERVICE|web");
    let got: Vec<(&str, &str, ProblemKind)> =
        problems.iter().map(|p| (p.reference.as_str(), p.at.as_str(), p.kind)).collect();
    for want in [
        ("Global.SVC", "trait 'gateway.trait.abm.io' spec.serviceName", ProblemKind::Undefined),
        ("Global.SVC", "trait 'gateway.trait.abm.io' spec.path", ProblemKind::Undefined),
        ("options.x", "trait 'gateway.trait.abm.io' spec.path", ProblemKind::Undefined),
        ("Global.DB_ZONE", "parameter 'DB_HOST'", ProblemKind::Undefined),
        ("Global.A", "parameter 'B'", ProblemKind::Cycle),
    ] {
        assert!(got.contains(&want), "{want:?} not in {got:?}");
    }
    let msg = e.to_string();
    assert!(
        msg.contains("Global.SVC (undefined; used at trait 'gateway.trait.abm.io' spec.serviceName, trait 'gateway.trait.abm.io' spec.path)"),
        "{msg}"
    );
    assert!(msg.contains("Global.DB_ZONE (undefined; used at parameter 'DB_HOST')"), "{msg}");
}

#[test]
fn skips_what_the_executor_does_not_deploy_and_checks_the_package() {
    let a = ac("metadata: { annotations: { appId: demo, clusterId: c, namespaceId: ns } }
spec:
  components:
  - revisionName: HELM|chart|_
  - revisionName: K8S_MICROSERVICE|web|2.0.0
  - revisionName: K8S_JOB|job|_
");
    let o = Overrides::default();
    let Outcome::Skip { reason } = resolve(&a, &a.spec.components[0], None, &o).unwrap() else { panic!() };
    assert!(reason.contains("Helm"), "{reason}");
    let w = workload();
    let pkg = PackagedComponent { package_version: "1.0.0", workload: &w };
    let e = resolve(&a, &a.spec.components[1], Some(pkg), &o).unwrap_err();
    assert_eq!(
        e,
        ResolveError::VersionMismatch {
            component: "K8S_MICROSERVICE|web".into(),
            wanted: "2.0.0".into(),
            packaged: "1.0.0".into()
        }
    );
    let e = resolve(&a, &a.spec.components[2], None, &o).unwrap_err();
    assert_eq!(e, ResolveError::NotInPackage { component: "K8S_JOB|job".into() });
    let empty = json!({ "kind": "Microservice" });
    let e = resolve(
        &a,
        &a.spec.components[2],
        Some(PackagedComponent { package_version: "1", workload: &empty }),
        &o,
    )
    .unwrap_err();
    assert_eq!(e, ResolveError::NoWorkload { component: "K8S_JOB|job".into() });
}

#[test]
fn parameter_values_and_traits_are_jinja_templates() {
    let a = ac(&format!(
        "{PLACED}  - {{ name: ZONE, value: '{{{{ Global.NAMESPACE_ID | upper }}}}' }}
  - {{ name: PORTS, value: [80, 443] }}
  components:
  - revisionName: K8S_MICROSERVICE|web|_
    parameterValues:
    - {{ name: REPLICAS, value: \"{{{{ Global.SIZE | default('2') | int + 1 }}}}\", toFieldPaths: [spec.replicas] }}
    - {{ name: P, value: '{{{{ Global.PORTS }}}}', toFieldPaths: [spec.ports] }}
    traits:
    - name: gateway.trait.abm.io
      spec: {{ path: \"/{{{{ Global.ZONE | lower | replace('-', '_') }}}}\", ports: '{{{{ Global.PORTS | tojson }}}}' }}
"
    ));
    let r = run(&a, &Overrides { namespace: Some("ns-x".into()), ..Overrides::default() }).unwrap();
    // Jinja renders text: `int + 1` gives the text "3" (a toFieldPath value is not re-typed).
    assert_eq!(r.component.workload["replicas"], "3");
    assert_eq!(r.component.workload["ports"], json!([80, 443]));
    assert_eq!(r.component.traits[0].spec, json!({ "path": "/ns_x", "ports": "[80, 443]" }));

    let bad = ac(&format!(
        "{PLACED}  components:\n  - revisionName: K8S_MICROSERVICE|web|_\n    parameterValues:\n    - {{ name: X, value: '{{{{ Global.DB_HOST ', toFieldPaths: [spec.x] }}\n"
    ));
    let e = run(&bad, &Overrides::default()).unwrap_err();
    let ResolveError::Unresolved { problems, .. } = &e else { panic!("{e}") };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].at.as_str(), problems[0].kind), ("parameter 'X'", ProblemKind::Syntax));
    assert!(e.to_string().contains("syntax error"), "{e}");
}
