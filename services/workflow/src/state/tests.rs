//! Every machine checked edge by edge against a table written out here, apart from the code.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// What the generic checks need from a machine.
trait Machine: Copy + Eq + Hash + Debug + Serialize + DeserializeOwned + 'static {
    type Trigger: Copy + Eq + Hash + Debug + Serialize + DeserializeOwned + 'static;
    const MACHINE: &'static str;
    fn initial() -> Self;
    fn states() -> &'static [Self];
    fn triggers() -> &'static [Self::Trigger];
    fn step(self, trigger: Self::Trigger) -> Result<Self, InvalidTransition>;
    fn terminal(self) -> bool;
    fn name(self) -> &'static str;
    fn trigger_name(trigger: Self::Trigger) -> &'static str;
}

macro_rules! machine {
    ($state:ty, $trigger:ty, $label:literal) => {
        impl Machine for $state {
            type Trigger = $trigger;
            const MACHINE: &'static str = $label;
            fn initial() -> Self {
                <$state>::INITIAL
            }
            fn states() -> &'static [Self] {
                <$state>::ALL
            }
            fn triggers() -> &'static [$trigger] {
                <$trigger>::ALL
            }
            fn step(self, trigger: $trigger) -> Result<Self, InvalidTransition> {
                self.next(trigger)
            }
            fn terminal(self) -> bool {
                self.is_terminal()
            }
            fn name(self) -> &'static str {
                self.as_str()
            }
            fn trigger_name(trigger: $trigger) -> &'static str {
                trigger.as_str()
            }
        }
    };
}

machine!(DeploymentState, DeploymentTrigger, "deployment");
machine!(ComponentState, ComponentTrigger, "component");
machine!(WorkflowState, WorkflowTrigger, "workflow");
machine!(TaskState, TaskTrigger, "task");

/// Checks every (state, trigger) pair against `expected`; a pair not listed must be rejected with
/// an error naming it.
fn check_table<M: Machine>(expected: &[(M, M::Trigger, M)]) {
    let mut table = HashMap::new();
    for &(from, trigger, to) in expected {
        assert!(
            table.insert((from, trigger), to).is_none(),
            "{from:?} --{trigger:?}--> listed twice in the expected table"
        );
    }
    let mut checked = 0;
    for &state in M::states() {
        for &trigger in M::triggers() {
            let got = state.step(trigger);
            match table.get(&(state, trigger)) {
                Some(&to) => assert_eq!(got, Ok(to), "{state:?} --{trigger:?}-->"),
                None => assert_eq!(
                    got,
                    Err(InvalidTransition {
                        machine: M::MACHINE,
                        state: state.name(),
                        trigger: M::trigger_name(trigger),
                    }),
                    "{state:?} --{trigger:?}--> must be rejected"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, M::states().len() * M::triggers().len());
}

/// A terminal state accepts exactly the listed exits; states not listed accept nothing.
fn check_terminal_exits<M: Machine>(exits: &[(M, &[M::Trigger])]) {
    for &state in M::states().iter().filter(|s| s.terminal()) {
        let accepted: HashSet<M::Trigger> =
            M::triggers().iter().copied().filter(|&t| state.step(t).is_ok()).collect();
        let documented: HashSet<M::Trigger> = exits
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, ts)| ts.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(accepted, documented, "exits of terminal {state:?}");
    }
    for (state, _) in exits {
        assert!(state.terminal(), "{state:?} listed with exits but is not terminal");
    }
}

fn successors<M: Machine>(state: M) -> impl Iterator<Item = M> {
    M::triggers().iter().filter_map(move |&t| state.step(t).ok())
}

fn check_reachable<M: Machine>() {
    let mut seen = HashSet::from([M::initial()]);
    let mut queue = VecDeque::from([M::initial()]);
    while let Some(state) = queue.pop_front() {
        for to in successors(state) {
            if seen.insert(to) {
                queue.push_back(to);
            }
        }
    }
    let unreachable: Vec<M> = M::states().iter().copied().filter(|s| !seen.contains(s)).collect();
    assert!(unreachable.is_empty(), "unreachable from {:?}: {unreachable:?}", M::initial());
}

fn check_nothing_stuck<M: Machine>() {
    for &start in M::states().iter().filter(|s| !s.terminal()) {
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        let mut found = false;
        while let Some(state) = queue.pop_front() {
            if state.terminal() {
                found = true;
                break;
            }
            for to in successors(state) {
                if seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        assert!(found, "{start:?} cannot reach a terminal state");
    }
    assert!(!M::initial().terminal(), "{:?} starts terminal", M::initial());
}

fn check_serde<M: Machine>(state_names: &[&str], trigger_names: &[&str]) {
    let names: Vec<&str> = M::states().iter().map(|s| s.name()).collect();
    assert_eq!(names, state_names, "{} state names", M::MACHINE);
    for &state in M::states() {
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(json, format!("\"{}\"", state.name()));
        assert_eq!(serde_json::from_str::<M>(&json).unwrap(), state);
    }
    let names: Vec<&str> = M::triggers().iter().map(|&t| M::trigger_name(t)).collect();
    assert_eq!(names, trigger_names, "{} trigger names", M::MACHINE);
    for &trigger in M::triggers() {
        let json = serde_json::to_string(&trigger).unwrap();
        assert_eq!(json, format!("\"{}\"", M::trigger_name(trigger)));
        assert_eq!(serde_json::from_str::<M::Trigger>(&json).unwrap(), trigger);
    }
    assert!(serde_json::from_str::<M>("\"NO_SUCH_STATE\"").is_err());
    let distinct: BTreeSet<&str> = state_names.iter().copied().collect();
    assert_eq!(distinct.len(), state_names.len());
}

mod deployment {
    use super::*;
    use DeploymentState as S;
    use DeploymentTrigger as T;

    const EXPECTED: &[(S, T, S)] = &[
        (S::Created, T::Start, S::ComponentChecking),
        (S::ComponentChecking, T::ComponentsExist, S::BackupChecking),
        (S::ComponentChecking, T::ComponentsNotFound, S::ProcessingComponent),
        (S::ProcessingComponent, T::ComponentTasksCreated, S::WaitingComponent),
        (S::WaitingComponent, T::ComponentsFinished, S::BackupChecking),
        (S::WaitingComponent, T::ComponentsFailed, S::Failure),
        (S::BackupChecking, T::AppPackageExists, S::Processing),
        (S::BackupChecking, T::AppPackageNotFound, S::BackingUp),
        (S::BackingUp, T::BackupSucceeded, S::Processing),
        (S::BackingUp, T::BackupFailed, S::Failure),
        (S::Processing, T::Applied, S::Waiting),
        (S::Waiting, T::AllSucceeded, S::Success),
        (S::Waiting, T::PartialFailed, S::WaitForOp),
        (S::Waiting, T::Update, S::Waiting),
        (S::Created, T::Terminate, S::Terminated),
        (S::ComponentChecking, T::Terminate, S::Terminated),
        (S::ProcessingComponent, T::Terminate, S::Terminated),
        (S::WaitingComponent, T::Terminate, S::Terminated),
        (S::BackupChecking, T::Terminate, S::Terminated),
        (S::BackingUp, T::Terminate, S::Terminated),
        (S::Processing, T::Terminate, S::Terminated),
        (S::Waiting, T::Terminate, S::Terminated),
        (S::Created, T::Timeout, S::Failure),
        (S::ComponentChecking, T::Timeout, S::Failure),
        (S::ProcessingComponent, T::Timeout, S::Failure),
        (S::WaitingComponent, T::Timeout, S::Failure),
        (S::BackupChecking, T::Timeout, S::Failure),
        (S::BackingUp, T::Timeout, S::Failure),
        (S::Processing, T::Timeout, S::Failure),
        (S::Waiting, T::Timeout, S::Failure),
        (S::Created, T::UnknownError, S::Exception),
        (S::ComponentChecking, T::UnknownError, S::Exception),
        (S::ProcessingComponent, T::UnknownError, S::Exception),
        (S::WaitingComponent, T::UnknownError, S::Exception),
        (S::BackupChecking, T::UnknownError, S::Exception),
        (S::BackingUp, T::UnknownError, S::Exception),
        (S::Processing, T::UnknownError, S::Exception),
        (S::Waiting, T::UnknownError, S::Exception),
        (S::Created, T::Rollback, S::Failure),
        (S::ComponentChecking, T::Rollback, S::Failure),
        (S::ProcessingComponent, T::Rollback, S::Failure),
        (S::WaitingComponent, T::Rollback, S::Failure),
        (S::BackupChecking, T::Rollback, S::Failure),
        (S::BackingUp, T::Rollback, S::Failure),
        (S::Processing, T::Rollback, S::Failure),
        (S::Waiting, T::Rollback, S::Failure),
        (S::WaitForOp, T::Retry, S::Processing),
        (S::Failure, T::Retry, S::Processing),
        (S::Exception, T::Retry, S::Processing),
        (S::Terminated, T::Retry, S::Processing),
        (S::Success, T::Retry, S::Processing),
        (S::WaitForOp, T::Rollback, S::Failure),
        (S::WaitForOp, T::Terminate, S::Terminated),
    ];

    #[test]
    fn every_state_trigger_pair_matches_the_table() {
        check_table(EXPECTED);
    }

    #[test]
    fn terminal_states_accept_only_the_operator_exits_of_wait_for_op() {
        let terminal: Vec<S> = S::ALL.iter().copied().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [S::WaitForOp, S::Success, S::Failure, S::Exception, S::Terminated]);
        check_terminal_exits::<S>(&[
            (S::WaitForOp, &[T::Retry, T::Rollback, T::Terminate]),
            (S::Failure, &[T::Retry]),
            (S::Exception, &[T::Retry]),
            (S::Terminated, &[T::Retry]),
            (S::Success, &[T::Retry]),
        ]);
    }

    #[test]
    fn every_state_is_reachable_and_none_is_stuck() {
        check_reachable::<S>();
        check_nothing_stuck::<S>();
    }

    #[test]
    fn names_are_sreworks_names_and_round_trip() {
        check_serde::<S>(
            &[
                "CREATED",
                "COMPONENT_CHECKING",
                "PROCESSING_COMPONENT",
                "WAITING_COMPONENT",
                "BACKUP_CHECKING",
                "BACKING_UP",
                "PROCESSING",
                "WAITING",
                "WAIT_FOR_OP",
                "SUCCESS",
                "FAILURE",
                "EXCEPTION",
                "TERMINATED",
            ],
            &[
                "START",
                "COMPONENTS_EXIST",
                "COMPONENTS_NOT_FOUND",
                "COMPONENT_TASKS_CREATED",
                "COMPONENTS_FINISHED",
                "COMPONENTS_FAILED",
                "APP_PACKAGE_EXISTS",
                "APP_PACKAGE_NOT_FOUND",
                "BACKUP_SUCCEEDED",
                "BACKUP_FAILED",
                "APPLIED",
                "ALL_SUCCEEDED",
                "PARTIAL_FAILED",
                "UPDATE",
                "RETRY",
                "ROLLBACK",
                "TERMINATE",
                "TIMEOUT",
                "UNKNOWN_ERROR",
            ],
        );
    }

    #[test]
    fn the_happy_path_and_a_retry_run_as_a_user_would_see_them() {
        let mut state = S::INITIAL;
        for trigger in [
            T::Start,
            T::ComponentsExist,
            T::AppPackageExists,
            T::Applied,
            T::PartialFailed,
            T::Retry,
            T::Applied,
            T::Update,
            T::AllSucceeded,
        ] {
            state = state.next(trigger).unwrap();
        }
        assert_eq!(state, S::Success);
        let err = state.next(T::Terminate).unwrap_err();
        assert_eq!(err.to_string(), "deployment: SUCCESS does not accept TERMINATE");
    }
}

mod component {
    use super::*;
    use ComponentState as S;
    use ComponentTrigger as T;

    const EXPECTED: &[(S, T, S)] = &[
        (S::Created, T::Start, S::Processing),
        (S::Processing, T::Applied, S::Running),
        (S::Processing, T::Failed, S::WaitForOp),
        (S::Running, T::Healthy, S::Success),
        (S::Running, T::Failed, S::WaitForOp),
        (S::Running, T::Update, S::Running),
        (S::Created, T::Terminate, S::Terminated),
        (S::Processing, T::Terminate, S::Terminated),
        (S::Running, T::Terminate, S::Terminated),
        (S::Created, T::Timeout, S::Failure),
        (S::Processing, T::Timeout, S::Failure),
        (S::Running, T::Timeout, S::Failure),
        (S::Created, T::UnknownError, S::Exception),
        (S::Processing, T::UnknownError, S::Exception),
        (S::Running, T::UnknownError, S::Exception),
        (S::WaitForOp, T::Retry, S::Processing),
        (S::WaitForOp, T::Terminate, S::Terminated),
        (S::Exception, T::Retry, S::Processing),
        (S::Exception, T::Terminate, S::Terminated),
        (S::Failure, T::Retry, S::Processing),
        (S::Terminated, T::Retry, S::Processing),
        (S::WaitForOp, T::Reset, S::Created),
        (S::Exception, T::Reset, S::Created),
        (S::Failure, T::Reset, S::Created),
        (S::Terminated, T::Reset, S::Created),
        (S::Success, T::Reset, S::Created),
    ];

    #[test]
    fn every_state_trigger_pair_matches_the_table() {
        check_table(EXPECTED);
    }

    #[test]
    fn terminal_states_accept_only_the_operator_exits() {
        check_terminal_exits::<S>(&[
            (S::WaitForOp, &[T::Retry, T::Terminate, T::Reset]),
            (S::Exception, &[T::Retry, T::Terminate, T::Reset]),
            (S::Failure, &[T::Retry, T::Reset]),
            (S::Terminated, &[T::Retry, T::Reset]),
            (S::Success, &[T::Reset]),
        ]);
    }

    #[test]
    fn every_state_is_reachable_and_none_is_stuck() {
        check_reachable::<S>();
        check_nothing_stuck::<S>();
    }

    #[test]
    fn names_are_sreworks_names_and_round_trip() {
        check_serde::<S>(
            &[
                "CREATED",
                "PROCESSING",
                "RUNNING",
                "WAIT_FOR_OP",
                "SUCCESS",
                "FAILURE",
                "EXCEPTION",
                "TERMINATED",
            ],
            &[
                "START",
                "APPLIED",
                "HEALTHY",
                "FAILED",
                "UPDATE",
                "RETRY",
                "RESET",
                "TERMINATE",
                "TIMEOUT",
                "UNKNOWN_ERROR",
            ],
        );
    }
}

mod workflow {
    use super::*;
    use WorkflowState as S;
    use WorkflowTrigger as T;

    const EXPECTED: &[(S, T, S)] = &[
        (S::Pending, T::Start, S::Preprocessing),
        (S::Preprocessing, T::Preprocessed, S::Running),
        (S::Running, T::Suspend, S::Suspend),
        (S::Suspend, T::Resume, S::Running),
        (S::Running, T::Succeeded, S::Success),
        (S::Suspend, T::Succeeded, S::Success),
        (S::Running, T::Failed, S::Failure),
        (S::Suspend, T::Failed, S::Failure),
        (S::Pending, T::UnknownError, S::Exception),
        (S::Preprocessing, T::UnknownError, S::Exception),
        (S::Running, T::UnknownError, S::Exception),
        (S::Suspend, T::UnknownError, S::Exception),
        (S::Pending, T::Terminate, S::Terminated),
        (S::Preprocessing, T::Terminate, S::Terminated),
        (S::Running, T::Terminate, S::Terminated),
        (S::Suspend, T::Terminate, S::Terminated),
        (S::Pending, T::Timeout, S::Failure),
        (S::Preprocessing, T::Timeout, S::Failure),
        (S::Running, T::Timeout, S::Failure),
        (S::Suspend, T::Timeout, S::Failure),
        (S::Success, T::Retry, S::Running),
        (S::Failure, T::Retry, S::Running),
        (S::Exception, T::Retry, S::Running),
        (S::Terminated, T::Retry, S::Running),
    ];

    #[test]
    fn every_state_trigger_pair_matches_the_table() {
        check_table(EXPECTED);
    }

    #[test]
    fn finished_instances_accept_only_retry() {
        check_terminal_exits::<S>(&[
            (S::Success, &[T::Retry]),
            (S::Failure, &[T::Retry]),
            (S::Exception, &[T::Retry]),
            (S::Terminated, &[T::Retry]),
        ]);
    }

    #[test]
    fn every_state_is_reachable_and_none_is_stuck() {
        check_reachable::<S>();
        check_nothing_stuck::<S>();
    }

    #[test]
    fn names_are_sreworks_names_and_round_trip() {
        check_serde::<S>(
            &[
                "PENDING",
                "PREPROCESSING",
                "RUNNING",
                "SUSPEND",
                "SUCCESS",
                "FAILURE",
                "EXCEPTION",
                "TERMINATED",
            ],
            &[
                "START",
                "PREPROCESSED",
                "SUSPEND",
                "RESUME",
                "SUCCEEDED",
                "FAILED",
                "RETRY",
                "TERMINATE",
                "TIMEOUT",
                "UNKNOWN_ERROR",
            ],
        );
    }
}

mod task {
    use super::*;
    use TaskState as S;
    use TaskTrigger as T;

    const EXPECTED: &[(S, T, S)] = &[
        (S::Pending, T::Start, S::Running),
        (S::Running, T::Processed, S::Waiting),
        (S::Running, T::ProcessedSuspend, S::WaitingSuspend),
        (S::Running, T::Suspend, S::RunningSuspend),
        (S::RunningSuspend, T::Resume, S::Running),
        (S::Waiting, T::Suspend, S::WaitingSuspend),
        (S::WaitingSuspend, T::Resume, S::Waiting),
        (S::Waiting, T::Finished, S::Success),
        (S::Waiting, T::Update, S::Waiting),
        (S::Running, T::Failed, S::Failure),
        (S::Waiting, T::Failed, S::Failure),
        (S::Running, T::UnknownError, S::Exception),
        (S::Waiting, T::UnknownError, S::Exception),
        (S::Pending, T::Terminate, S::Terminated),
        (S::Running, T::Terminate, S::Terminated),
        (S::Waiting, T::Terminate, S::Terminated),
        (S::RunningSuspend, T::Terminate, S::Terminated),
        (S::WaitingSuspend, T::Terminate, S::Terminated),
        (S::Pending, T::Timeout, S::Failure),
        (S::Running, T::Timeout, S::Failure),
        (S::Waiting, T::Timeout, S::Failure),
        (S::RunningSuspend, T::Timeout, S::Failure),
        (S::WaitingSuspend, T::Timeout, S::Failure),
        (S::Success, T::Retry, S::Running),
        (S::Failure, T::Retry, S::Running),
        (S::Exception, T::Retry, S::Running),
        (S::Terminated, T::Retry, S::Running),
        (S::Success, T::Reset, S::Pending),
        (S::Failure, T::Reset, S::Pending),
        (S::Exception, T::Reset, S::Pending),
        (S::Terminated, T::Reset, S::Pending),
    ];

    #[test]
    fn every_state_trigger_pair_matches_the_table() {
        check_table(EXPECTED);
    }

    #[test]
    fn finished_tasks_accept_only_retry() {
        check_terminal_exits::<S>(&[
            (S::Success, &[T::Retry, T::Reset]),
            (S::Failure, &[T::Retry, T::Reset]),
            (S::Exception, &[T::Retry, T::Reset]),
            (S::Terminated, &[T::Retry, T::Reset]),
        ]);
    }

    #[test]
    fn every_state_is_reachable_and_none_is_stuck() {
        check_reachable::<S>();
        check_nothing_stuck::<S>();
    }

    #[test]
    fn names_are_sreworks_names_and_round_trip() {
        check_serde::<S>(
            &[
                "PENDING",
                "RUNNING",
                "WAITING",
                "RUNNING_SUSPEND",
                "WAITING_SUSPEND",
                "SUCCESS",
                "FAILURE",
                "EXCEPTION",
                "TERMINATED",
            ],
            &[
                "START",
                "PROCESSED",
                "PROCESSED_SUSPEND",
                "SUSPEND",
                "RESUME",
                "FINISHED",
                "FAILED",
                "UPDATE",
                "RETRY",
                "RESET",
                "TERMINATE",
                "TIMEOUT",
                "UNKNOWN_ERROR",
            ],
        );
    }
}

/// The checks themselves must be able to fail: a table missing an edge, or listing a wrong one,
/// is caught.
#[test]
#[should_panic(expected = "must be rejected")]
fn check_table_catches_an_edge_the_code_has_but_the_table_lacks() {
    check_table::<WorkflowState>(&[(
        WorkflowState::Pending,
        WorkflowTrigger::Start,
        WorkflowState::Preprocessing,
    )]);
}

#[test]
#[should_panic(expected = "cannot reach a terminal state")]
fn check_nothing_stuck_catches_a_trap() {
    /// A two-state machine whose non-terminal state loops on itself.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
    enum Trap {
        Loop,
        Done,
    }
    impl Machine for Trap {
        type Trigger = TaskTrigger;
        const MACHINE: &'static str = "trap";
        fn initial() -> Self {
            Trap::Loop
        }
        fn states() -> &'static [Self] {
            &[Trap::Loop, Trap::Done]
        }
        fn triggers() -> &'static [TaskTrigger] {
            TaskTrigger::ALL
        }
        fn step(self, _: TaskTrigger) -> Result<Self, InvalidTransition> {
            Ok(self)
        }
        fn terminal(self) -> bool {
            self == Trap::Done
        }
        fn name(self) -> &'static str {
            "TRAP"
        }
        fn trigger_name(trigger: TaskTrigger) -> &'static str {
            trigger.as_str()
        }
    }
    check_nothing_stuck::<Trap>();
}

mod events {
    use sw_contracts::events::catalogue;
    use sw_contracts::workflow::{
        COMPONENT_STATES, DEPLOYMENT_STATES, TASK_STATES, WORKFLOW_STATES, state_action,
    };

    use super::*;

    /// Every state a machine can enter has its event in the published catalogue, and the
    /// contracts' state lists are the machines' states.
    #[test]
    fn every_state_has_its_event() {
        let names: Vec<&str> = catalogue().iter().map(|e| e.name).collect();
        let check = |entity: &str, states: Vec<&str>, listed: &[&str]| {
            assert_eq!(states, listed, "{entity}: the contracts list the machine's states");
            for s in states {
                let name = format!("{entity}.{}", state_action(s));
                assert!(names.contains(&name.as_str()), "{name} is not in the event catalogue");
            }
        };
        check(
            "deployment.app",
            DeploymentState::ALL.iter().map(|s| s.as_str()).collect(),
            &DEPLOYMENT_STATES,
        );
        check(
            "deployment.component",
            ComponentState::ALL.iter().map(|s| s.as_str()).collect(),
            &COMPONENT_STATES,
        );
        check("workflow.instance", WorkflowState::ALL.iter().map(|s| s.as_str()).collect(), &WORKFLOW_STATES);
        check("workflow.task", TaskState::ALL.iter().map(|s| s.as_str()).collect(), &TASK_STATES);
    }
}
