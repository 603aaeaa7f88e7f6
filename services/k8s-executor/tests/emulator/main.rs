//! Black-box tests of the executor against a Kubernetes API over real HTTP.
//!
//! Each scenario runs the executor in-process (`service::build` + `run_until_stopped`) with its
//! own NATS subjects and MariaDB database (`sw_testkit`), publishes commands on the commands stream
//! as the workflow does and reads `executor.component.*` events from the events stream as any
//! subscriber does. The API is the emulator in `tests/k8s-emulator` — one process per test, started
//! here with `$SW_K8S_EMULATOR_PYTHON` (set by `make test`) — whose request log lets a scenario
//! check *how* the executor talked to it. Every scenario that makes sense on a real cluster also
//! has a `real_cluster` variant running the same body against the cluster `KUBECONFIG` names (kind,
//! k3s…); without `KUBECONFIG` it prints `SKIPPED real-cluster run: KUBECONFIG is not set` and
//! passes. See tests/k8s-emulator/README.md.
//!
//! The scenarios are the ones peers got wrong: rapid A→B→A revisions must never delete what the
//! newest revision renders (KubeVela #6746/#7278), an older revision arriving late is refused, an
//! executor killed mid-apply leaves one consistent state after the redelivery, objects that are not
//! the instance's are never pruned, and another field manager's field is never forced.

mod executor;
mod harness;
mod scenarios;

/// `mod $name { emulator, real_cluster }`, both running `scenarios::$name` on their backend.
macro_rules! scenario {
    ($name:ident) => {
        mod $name {
            use crate::harness::Backend;

            #[tokio::test]
            async fn emulator() {
                crate::scenarios::$name(Backend::emulator().await).await;
            }

            #[tokio::test]
            async fn real_cluster() {
                let Some(backend) = Backend::real_cluster().await else { return };
                crate::scenarios::$name(backend).await;
            }
        }
    };
}

scenario!(a_microservice_is_server_side_applied_with_ownership_labels);
scenario!(rapid_a_b_a_revisions_never_delete_what_the_newest_renders);
scenario!(an_older_revision_arriving_late_is_refused_and_changes_nothing);
scenario!(prune_and_delete_remove_exactly_the_instances_objects);
scenario!(a_field_another_manager_owns_fails_as_a_conflict_and_is_not_forced);
scenario!(a_component_that_rolls_out_is_reported_healthy);
scenario!(a_component_that_never_becomes_healthy_fails_with_timeout_at_its_deadline);

/// Needs the emulator's delay control: no real-cluster variant.
#[tokio::test]
async fn a_command_redelivered_after_the_executor_was_killed_mid_apply_ends_consistent() {
    scenarios::killed_mid_apply(harness::Backend::emulator().await).await;
}
