//! The default launch YAML of a package: an SREWorks `ApplicationConfiguration` that deploys every
//! component of the package at the package's versions, for a user to adjust (traits, parameter
//! values) before deploying. Component revisions are named the SREWorks way,
//! `TYPE|name|version`; the scopes point at the cluster, namespace and stage the deployment
//! chooses (`{{ Global.* }}` placeholders, as in SREWorks' own templates).

use serde::Serialize;
use sw_contracts::packages::AppPackageOut;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    annotations: Annotations<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Annotations<'a> {
    app_id: &'a str,
    /// A string, as Kubernetes annotations are.
    app_package_id: String,
    package_version: &'a str,
}

#[derive(Serialize)]
struct Spec {
    components: Vec<Component>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    revision_name: String,
    scopes: Vec<ScopeRef>,
    data_inputs: Vec<()>,
    data_outputs: Vec<()>,
    dependencies: Vec<()>,
    traits: Vec<()>,
    parameter_values: Vec<()>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeRef {
    scope_ref: ScopeTarget,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeTarget {
    api_version: &'static str,
    kind: &'static str,
    name: &'static str,
}

fn scopes() -> Vec<ScopeRef> {
    [
        ("Cluster", "{{ Global.CLUSTER_ID }}"),
        ("Namespace", "{{ Global.NAMESPACE_ID }}"),
        ("Stage", "{{ Global.STAGE_ID }}"),
    ]
    .into_iter()
    .map(|(kind, name)| ScopeRef { scope_ref: ScopeTarget { api_version: "apps.abm.io/v1", kind, name } })
    .collect()
}

/// The YAML text of the default `ApplicationConfiguration` of `pkg`.
pub fn application_configuration(pkg: &AppPackageOut) -> Result<String, serde_yaml::Error> {
    let doc = ApplicationConfiguration {
        api_version: "core.oam.dev/v1alpha2",
        kind: "ApplicationConfiguration",
        metadata: Metadata {
            name: pkg.app_id.as_str(),
            annotations: Annotations {
                app_id: pkg.app_id.as_str(),
                app_package_id: pkg.id.to_string(),
                package_version: &pkg.package_version,
            },
        },
        spec: Spec {
            components: pkg
                .components
                .iter()
                .map(|c| Component {
                    revision_name: format!("{}|{}|{}", c.component_type, c.component_name, c.package_version),
                    scopes: scopes(),
                    data_inputs: Vec::new(),
                    data_outputs: Vec::new(),
                    dependencies: Vec::new(),
                    traits: Vec::new(),
                    parameter_values: Vec::new(),
                })
                .collect(),
        },
    };
    serde_yaml::to_string(&doc)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sw_contracts::AppId;
    use sw_contracts::packages::{ComponentPackageOut, Md5Status, PackageSource};

    use super::*;

    #[test]
    fn one_component_per_package_component_with_its_revision() {
        let c = |t: &str, n: &str, v: &str| ComponentPackageOut {
            component_type: t.into(),
            component_name: n.into(),
            package_version: v.into(),
            relative_path: format!("{t}_{n}.zip"),
            size: 1,
            md5: "0".repeat(32),
            sha256: "0".repeat(64),
            md5_status: Md5Status::NotDeclared,
        };
        let pkg = AppPackageOut {
            id: 42,
            app_id: AppId::parse("health").unwrap(),
            package_version: "22.3.5+20231013225826568980".into(),
            package_creator: None,
            tags: vec![],
            source: PackageSource::Import,
            size: 10,
            sha256: "0".repeat(64),
            components: vec![
                c("K8S_MICROSERVICE", "health", "22.5.1+1"),
                c("RESOURCE_ADDON", "system-env@system-env", "1.1.4+2"),
            ],
            created_by: "user:a".into(),
            created_at: Utc::now(),
        };
        let text = application_configuration(&pkg).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "core.oam.dev/v1alpha2");
        assert_eq!(v["kind"], "ApplicationConfiguration");
        assert_eq!(v["metadata"]["annotations"]["appId"], "health");
        assert_eq!(v["metadata"]["annotations"]["appPackageId"], "42");
        assert_eq!(v["metadata"]["annotations"]["packageVersion"], "22.3.5+20231013225826568980");
        let comps = v["spec"]["components"].as_sequence().unwrap();
        assert_eq!(comps.len(), 2);
        assert_eq!(comps[0]["revisionName"], "K8S_MICROSERVICE|health|22.5.1+1");
        assert_eq!(comps[1]["revisionName"], "RESOURCE_ADDON|system-env@system-env|1.1.4+2");
        assert_eq!(comps[1]["traits"].as_sequence().unwrap().len(), 0);
        assert_eq!(comps[1]["parameterValues"].as_sequence().unwrap().len(), 0);
        assert_eq!(comps[0]["scopes"][1]["scopeRef"]["kind"], "Namespace");
    }
}
