//! PersistentVolumeClaim: healthy once bound to a volume.

use super::{Assessment, FieldError, Health, Object};

/// `Bound` → Healthy; `Pending` → Progressing (provisioning, or waiting for the first consumer
/// with a `WaitForFirstConsumer` storage class); `Lost` → Degraded (its volume is gone); no or
/// another phase → Unknown.
pub(super) fn pvc(obj: &Object<'_>) -> Result<Assessment, FieldError> {
    let phase = obj.fields.object("status")?.str("phase")?;
    Ok(match phase {
        Some("Bound") => Assessment::healthy(),
        Some("Pending") => Assessment::new(Health::Progressing, "Waiting for the claim to be bound"),
        Some("Lost") => Assessment::new(Health::Degraded, "The claim lost its persistent volume"),
        Some(other) => Assessment::new(Health::Unknown, format!("Unexpected claim phase {other:?}")),
        None => Assessment::new(Health::Unknown, "The claim has no phase yet"),
    })
}
