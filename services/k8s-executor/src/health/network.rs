//! Service and Ingress: healthy unless they wait for a load balancer.

use super::{Assessment, FieldError, Health, Object};

/// A Service of type `LoadBalancer` without an address in `status.loadBalancer.ingress` →
/// Progressing (the cloud has not provisioned it yet); every other Service → Healthy.
pub(super) fn service(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    if obj.fields.object("spec")?.str("type")? != Some("LoadBalancer") {
        return Ok(Assessment::healthy());
    }
    load_balanced(obj, "Waiting for the load balancer of service")
}

/// An Ingress without an address in `status.loadBalancer.ingress` → Progressing (the ingress
/// controller has not admitted it yet); with one → Healthy.
///
/// As in gitops-engine, an Ingress whose controller never publishes an address stays
/// Progressing; that is a misconfigured controller (`--publish-service` unset), and the deadline
/// surfaces it rather than hiding it.
pub(super) fn ingress(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    load_balanced(obj, "Waiting for an address for ingress")
}

fn load_balanced(obj: &Object<'_>, waiting: &str) -> Result<Assessment, FieldError> {
    let addresses = obj.fields.at(&["status", "loadBalancer"])?.array("ingress")?;
    Ok(if addresses.is_empty() {
        Assessment::new(Health::Progressing, format!("{waiting} {:?}", obj.name))
    } else {
        Assessment::healthy()
    })
}
