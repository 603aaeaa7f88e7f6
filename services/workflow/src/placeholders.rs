//! SREWorks' `PLACEHOLDER_*` tokens, filled per instance when a command is built.
//!
//! SREWorks packages carry tokens such as `PLACEHOLDER_NAMESPACE_ID` or `PLACEHOLDER_NAME` in
//! their workloads and traits, and AppManager replaces them with the values of the instance being
//! deployed. The same tokens are filled here in every string of the rendered workload and trait
//! specs; a token this list does not know is left as it is.

use serde_json::Value;
use sw_contracts::executor::{ComponentTarget, RenderedComponent};

/// The values of one component instance.
#[derive(Debug, Clone)]
pub struct Vars {
    pairs: Vec<(&'static str, String)>,
}

impl Vars {
    /// The values for `target`, deployed by deployment `deploy_app_id` as component row
    /// `deploy_component_id` of package `app_package_id`.
    pub fn new(
        target: &ComponentTarget,
        deploy_app_id: u64,
        deploy_component_id: u64,
        app_package_id: u64,
    ) -> Self {
        let stage = target.stage_id.clone().unwrap_or_default();
        // Longest names first, so `PLACEHOLDER_APP_INSTANCE_NAME` is not read as
        // `PLACEHOLDER_APP_INSTANCE` + `_NAME`.
        let mut pairs = vec![
            ("PLACEHOLDER_COMPONENT_INSTANCE_ID", target.component_instance.clone()),
            ("PLACEHOLDER_DEPLOY_COMPONENT_ID", deploy_component_id.to_string()),
            ("PLACEHOLDER_APP_INSTANCE_NAME", target.app_instance.clone()),
            ("PLACEHOLDER_APP_INSTANCE_ID", target.app_instance.clone()),
            ("PLACEHOLDER_APP_PACKAGE_ID", app_package_id.to_string()),
            ("PLACEHOLDER_DEPLOY_APP_ID", deploy_app_id.to_string()),
            ("PLACEHOLDER_NAMESPACE_ID", target.namespace.clone()),
            ("PLACEHOLDER_CLUSTER_ID", target.cluster_id.clone()),
            ("PLACEHOLDER_STAGE_ID", stage),
            ("PLACEHOLDER_APP_ID", target.app_id.to_string()),
            ("PLACEHOLDER_NAME", target.component_instance.clone()),
        ];
        pairs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        Self { pairs }
    }

    /// `s` with every known token replaced.
    pub fn fill_str(&self, s: &str) -> String {
        if !s.contains("PLACEHOLDER_") {
            return s.to_owned();
        }
        let mut out = s.to_owned();
        for (k, v) in &self.pairs {
            if out.contains(k) {
                out = out.replace(k, v);
            }
        }
        out
    }

    fn fill_value(&self, v: &mut Value) {
        match v {
            Value::String(s) if s.contains("PLACEHOLDER_") => *s = self.fill_str(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.fill_value(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.fill_value(x)),
            _ => {}
        }
    }

    /// Fills the workload and every trait spec of `c`.
    pub fn fill(&self, c: &mut RenderedComponent) {
        self.fill_value(&mut c.workload);
        for t in &mut c.traits {
            self.fill_value(&mut t.spec);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sw_contracts::AppId;

    use super::*;

    fn target() -> ComponentTarget {
        ComponentTarget {
            cluster_id: "master".into(),
            namespace: "default".into(),
            app_id: AppId::parse("health").unwrap(),
            stage_id: Some("prod".into()),
            app_instance: "prod-health".into(),
            component_instance: "health".into(),
        }
    }

    #[test]
    fn every_token_is_filled_and_longer_names_win() {
        let vars = Vars::new(&target(), 12, 34, 56);
        let mut c = RenderedComponent {
            component_type: "K8S_MICROSERVICE".into(),
            component_name: "health".into(),
            package_version: None,
            workload: json!({
                "env": {
                    "A": "PLACEHOLDER_APP_INSTANCE_NAME",
                    "B": "ns=PLACEHOLDER_NAMESPACE_ID/PLACEHOLDER_NAME",
                    "C": ["PLACEHOLDER_DEPLOY_APP_ID-PLACEHOLDER_DEPLOY_COMPONENT_ID", 3],
                    "D": "PLACEHOLDER_STAGE_ID PLACEHOLDER_CLUSTER_ID PLACEHOLDER_APP_ID PLACEHOLDER_APP_PACKAGE_ID",
                    "E": "PLACEHOLDER_UNKNOWN_THING",
                }
            }),
            traits: vec![sw_contracts::executor::TraitSpec {
                name: "env".into(),
                runtime: None,
                spec: json!({"x": "PLACEHOLDER_COMPONENT_INSTANCE_ID"}),
            }],
        };
        vars.fill(&mut c);
        assert_eq!(
            c.workload,
            json!({"env": {
                "A": "prod-health",
                "B": "ns=default/health",
                "C": ["12-34", 3],
                "D": "prod master health 56",
                "E": "PLACEHOLDER_UNKNOWN_THING",
            }})
        );
        assert_eq!(c.traits[0].spec, json!({"x": "health"}));
    }
}
