//! Launch validation: everything about a launch file that can be refused before anything is
//! deployed, found at once, and the order things run in when it is accepted.
//!
//! [`validate_launch`] returns a [`LaunchPlan`] or every [`LaunchError`] found (each with a stable
//! [`LaunchError::code`] for an RFC 9457 problem):
//! - Component types: those in [`EXECUTOR_COMPONENT_TYPES`] are deployed; the addon types
//!   ([`ADDON_COMPONENT_TYPES`]) are skipped with [`skip_reason`]'s reason, as [`resolve()`](crate::resolve())
//!   does; every other type (`HELM`, `ABM_HELM`, `ABM_KUSTOMIZE`, anything unknown) is refused.
//! - Components: a `TYPE|name` given twice is refused; `dependencies[].component` names another
//!   component as `TYPE|name` (the name may hold `@`, `RESOURCE_ADDON|terraform@test`; a trailing
//!   `|version` is tolerated); a name not in the file is refused, and so is a cycle (naming its
//!   members). A dependency on a skipped addon is satisfied: the addon is not deployed by us.
//!   [`LaunchPlan::components`] lists all components (skipped ones marked) in dependency order,
//!   keeping launch order among independent ones.
//! - Workflow: the mode is `spec.workflow.mode` (`STEP_BY_STEP` or `DAG`; no SREWorks fixture
//!   writes one). Without it, steps run as listed (`STEP_BY_STEP`) unless a step reads an output of
//!   a step listed after it, as `test_workflow_graph.yaml` does: then the mode is `DAG`. Step types are [`StepType`]; a step `name` given twice and an
//!   output name produced twice are refused. A step waits for the steps whose `outputs[].name`
//!   its `inputs[].from` names; an input nobody produces is refused. `STEP_BY_STEP` runs the
//!   steps as listed, so an input produced by the same or a later step is refused; `DAG` runs them
//!   in a topological order of those edges (stable: listed order among independent steps), and a
//!   cycle is refused. Without `spec.workflow` (or with no steps) one implicit `deploy` step runs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde_json::Value;
use sw_contracts::executor::EXECUTOR_COMPONENT_TYPES;

use crate::model::{ApplicationConfiguration, WorkflowStep};
use crate::resolve::skip_reason;

/// Component types skipped (not refused): SREWorks' own services provide them.
pub const ADDON_COMPONENT_TYPES: [&str; 3] = ["RESOURCE_ADDON", "INTERNAL_ADDON", "TRAIT_ADDON"];

/// One problem of a launch file; [`validate_launch`] reports them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A component of a type the executor cannot deploy and that is not a skipped addon.
    #[error(
        "component {component}: type {component_type} cannot be deployed (deployable types: {}; skipped addon types: {})",
        EXECUTOR_COMPONENT_TYPES.join(", "),
        ADDON_COMPONENT_TYPES.join(", ")
    )]
    UnsupportedComponentType {
        /// `TYPE|name`.
        component: String,
        /// The refused type.
        component_type: String,
    },
    /// The same `TYPE|name` twice in `spec.components`.
    #[error("component {component} is listed {count} times")]
    DuplicateComponent {
        /// `TYPE|name`.
        component: String,
        /// How many times.
        count: usize,
    },
    /// A dependency names no component of the file.
    #[error("component {component} depends on {dependency}, which is not a component of this launch file")]
    UnknownDependency {
        /// The dependent component, `TYPE|name`.
        component: String,
        /// The dependency as written.
        dependency: String,
    },
    /// Components that depend on each other.
    #[error("dependency cycle among components {}", members.join(", "))]
    DependencyCycle {
        /// The components of the cycle, in launch order.
        members: Vec<String>,
    },
    /// `spec.workflow.mode` is neither `STEP_BY_STEP` nor `DAG`.
    #[error("workflow mode {mode} is not supported (expected STEP_BY_STEP or DAG)")]
    InvalidWorkflowMode {
        /// The mode as written.
        mode: String,
    },
    /// A step of a type this project does not run.
    #[error("workflow step {step}: type {step_type} is not supported (expected one of {})", StepType::ALL_NAMES.join(", "))]
    UnknownStepType {
        /// The step (its name, or `#N` for the N-th unnamed step).
        step: String,
        /// The type as written.
        step_type: String,
    },
    /// Two steps with one name.
    #[error("workflow step name {step} is used {count} times")]
    DuplicateStep {
        /// The name.
        step: String,
        /// How many times.
        count: usize,
    },
    /// One output name produced by two steps (or twice by one).
    #[error("workflow output {output} is produced more than once (by steps {})", steps.join(", "))]
    DuplicateOutput {
        /// The output name.
        output: String,
        /// The steps producing it.
        steps: Vec<String>,
    },
    /// An input that no step produces.
    #[error("workflow step {step}: input from {input} is not an output of any step")]
    UnknownStepInput {
        /// The step.
        step: String,
        /// The `from` as written.
        input: String,
    },
    /// In `STEP_BY_STEP` mode, an input produced by the same or a later step.
    #[error(
        "workflow step {step}: input from {input} is produced by step {producer}, which does not run before it in STEP_BY_STEP mode (use mode DAG)"
    )]
    InputFromLaterStep {
        /// The step.
        step: String,
        /// The input.
        input: String,
        /// The step producing it.
        producer: String,
    },
    /// In `DAG` mode, steps that wait for each other.
    #[error("workflow cycle among steps {}", members.join(", "))]
    WorkflowCycle {
        /// The steps of the cycle, in listed order.
        members: Vec<String>,
    },
    /// `inputs` / `outputs` of a step that are not the expected lists.
    #[error("workflow step {step}: {message}")]
    InvalidStep {
        /// The step.
        step: String,
        /// What is wrong.
        message: String,
    },
}

impl LaunchError {
    /// The stable machine code (`unsupported_component_type`, `dependency_cycle`…).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedComponentType { .. } => "unsupported_component_type",
            Self::DuplicateComponent { .. } => "duplicate_component",
            Self::UnknownDependency { .. } => "unknown_dependency",
            Self::DependencyCycle { .. } => "dependency_cycle",
            Self::InvalidWorkflowMode { .. } => "invalid_workflow_mode",
            Self::UnknownStepType { .. } => "unknown_step_type",
            Self::DuplicateStep { .. } => "duplicate_step",
            Self::DuplicateOutput { .. } => "duplicate_output",
            Self::UnknownStepInput { .. } => "unknown_step_input",
            Self::InputFromLaterStep { .. } => "input_from_later_step",
            Self::WorkflowCycle { .. } => "workflow_cycle",
            Self::InvalidStep { .. } => "invalid_step",
        }
    }
}

/// What happens to a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentAction {
    /// Deployed by the k8s executor.
    Deploy,
    /// Skipped (an addon); the reason is [`skip_reason`]'s.
    Skip {
        /// Why.
        reason: String,
    },
}

/// A component of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedComponent {
    /// Its index in `spec.components`.
    pub index: usize,
    /// `TYPE|name`.
    pub label: String,
    /// Deploy or skip.
    pub action: ComponentAction,
    /// Indexes (in `spec.components`) of the components it depends on.
    pub depends_on: Vec<usize>,
}

/// How the steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkflowMode {
    /// One after the other, as listed (the default).
    #[default]
    StepByStep,
    /// In a topological order of the input/output edges.
    Dag,
}

impl WorkflowMode {
    /// `STEP_BY_STEP` or `DAG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StepByStep => "STEP_BY_STEP",
            Self::Dag => "DAG",
        }
    }
}

/// The step types this project runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepType {
    /// `deploy`: every component.
    Deploy,
    /// `apply-components`: the components its properties list.
    ApplyComponents,
    /// `suspend`: wait to be resumed.
    Suspend,
    /// `rollout-promotion`.
    RolloutPromotion,
    /// `webhook`.
    Webhook,
}

impl StepType {
    /// Every type, as written in a launch file.
    pub const ALL_NAMES: [&'static str; 5] =
        ["deploy", "apply-components", "suspend", "rollout-promotion", "webhook"];

    /// Reads a type as written in a launch file.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "deploy" => Self::Deploy,
            "apply-components" => Self::ApplyComponents,
            "suspend" => Self::Suspend,
            "rollout-promotion" => Self::RolloutPromotion,
            "webhook" => Self::Webhook,
            _ => return None,
        })
    }

    /// The type as written in a launch file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::ApplyComponents => "apply-components",
            Self::Suspend => "suspend",
            Self::RolloutPromotion => "rollout-promotion",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// Its index in `spec.workflow.steps` (0 for the implicit step).
    pub index: usize,
    /// Its name, if given.
    pub name: Option<String>,
    /// Its type.
    pub step_type: StepType,
    /// Its output names.
    pub outputs: Vec<String>,
    /// The `from` of its inputs.
    pub inputs: Vec<String>,
    /// Indexes of the steps producing its inputs (the steps it waits for in `DAG` mode).
    pub waits_for: Vec<usize>,
}

/// The workflow part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPlan {
    /// The mode.
    pub mode: WorkflowMode,
    /// True when the file has no steps and the one implicit `deploy` step runs.
    pub implicit: bool,
    /// The steps, as listed.
    pub steps: Vec<PlannedStep>,
    /// Step indexes in the order they run (listed order in `STEP_BY_STEP`, topological in `DAG`).
    pub order: Vec<usize>,
}

/// What an accepted launch file does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// All components, in dependency order.
    pub components: Vec<PlannedComponent>,
    /// The workflow.
    pub workflow: WorkflowPlan,
}

/// Validates a launch file, returning its plan or every problem found.
pub fn validate_launch(ac: &ApplicationConfiguration) -> Result<LaunchPlan, Vec<LaunchError>> {
    let mut errors = Vec::new();
    let components = plan_components(ac, &mut errors);
    let workflow = plan_workflow(ac, &mut errors);
    match (components, workflow) {
        (Some(components), Some(workflow)) if errors.is_empty() => Ok(LaunchPlan { components, workflow }),
        _ => Err(errors),
    }
}

fn plan_components(
    ac: &ApplicationConfiguration,
    errors: &mut Vec<LaunchError>,
) -> Option<Vec<PlannedComponent>> {
    let comps = &ac.spec.components;
    let labels: Vec<String> = comps.iter().map(|c| c.revision_name.label()).collect();
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_label.entry(l).or_default().push(i);
    }
    for (i, c) in comps.iter().enumerate() {
        let ty = c.revision_name.component_type();
        if !EXECUTOR_COMPONENT_TYPES.contains(&ty) && !ADDON_COMPONENT_TYPES.contains(&ty) {
            errors.push(LaunchError::UnsupportedComponentType {
                component: labels[i].clone(),
                component_type: ty.to_owned(),
            });
        }
    }
    for (l, idx) in &by_label {
        if idx.len() > 1 {
            errors.push(LaunchError::DuplicateComponent { component: (*l).to_owned(), count: idx.len() });
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); comps.len()];
    for (i, c) in comps.iter().enumerate() {
        for d in &c.dependencies {
            match by_label.get(dependency_label(&d.component)) {
                Some(targets) => {
                    for &t in targets {
                        if !deps[i].contains(&t) {
                            deps[i].push(t);
                        }
                    }
                }
                None => errors.push(LaunchError::UnknownDependency {
                    component: labels[i].clone(),
                    dependency: d.component.clone(),
                }),
            }
        }
    }
    match topo_order(&deps) {
        Ok(order) => Some(
            order
                .into_iter()
                .map(|i| PlannedComponent {
                    index: i,
                    label: labels[i].clone(),
                    action: match skip_reason(&comps[i].revision_name) {
                        Some(reason) => ComponentAction::Skip { reason },
                        None => ComponentAction::Deploy,
                    },
                    depends_on: deps[i].clone(),
                })
                .collect(),
        ),
        Err(cycles) => {
            for members in cycles {
                errors.push(LaunchError::DependencyCycle {
                    members: members.into_iter().map(|i| labels[i].clone()).collect(),
                });
            }
            None
        }
    }
}

/// `TYPE|name`, `TYPE|name|version` → `TYPE|name`.
fn dependency_label(dep: &str) -> &str {
    let dep = dep.trim();
    match dep.match_indices('|').nth(1) {
        Some((at, _)) => &dep[..at],
        None => dep,
    }
}

fn step_id(step: &WorkflowStep, index: usize) -> String {
    match step.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => format!("#{} ({})", index + 1, step.step_type),
    }
}

/// Reads `key` of a step's extra fields: a list of mappings each with a string `field`.
fn names_in(step: &WorkflowStep, key: &str, field: &str) -> Result<Vec<String>, String> {
    match step.extra.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(format!("{key}[{i}] has no {field}")),
            })
            .collect(),
        Some(_) => Err(format!("{key} is not a list")),
    }
}

fn plan_workflow(ac: &ApplicationConfiguration, errors: &mut Vec<LaunchError>) -> Option<WorkflowPlan> {
    let Some(wf) = ac.spec.workflow.as_ref() else {
        return Some(implicit_workflow(WorkflowMode::StepByStep));
    };
    let first_error = errors.len();
    let explicit = match wf.extra.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("STEP_BY_STEP") => Some(WorkflowMode::StepByStep),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("DAG") => Some(WorkflowMode::Dag),
        Some(other) => {
            let mode = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            errors.push(LaunchError::InvalidWorkflowMode { mode });
            Some(WorkflowMode::StepByStep)
        }
    };
    if wf.steps.is_empty() {
        let mode = explicit.unwrap_or(WorkflowMode::StepByStep);
        return (errors.len() == first_error).then(|| implicit_workflow(mode));
    }
    let ids: Vec<String> = wf.steps.iter().enumerate().map(|(i, s)| step_id(s, i)).collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &wf.steps {
        if let Some(n) = s.name.as_deref().filter(|n| !n.is_empty()) {
            *names.entry(n).or_default() += 1;
        }
    }
    for (n, count) in names {
        if count > 1 {
            errors.push(LaunchError::DuplicateStep { step: n.to_owned(), count });
        }
    }
    let mut steps = Vec::with_capacity(wf.steps.len());
    let mut producers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in wf.steps.iter().enumerate() {
        let step_type = StepType::parse(&s.step_type);
        if step_type.is_none() {
            errors
                .push(LaunchError::UnknownStepType { step: ids[i].clone(), step_type: s.step_type.clone() });
        }
        let mut read = |key, field| {
            names_in(s, key, field).unwrap_or_else(|message| {
                errors.push(LaunchError::InvalidStep { step: ids[i].clone(), message });
                Vec::new()
            })
        };
        let outputs = read("outputs", "name");
        let inputs = read("inputs", "from");
        for o in &outputs {
            producers.entry(o.clone()).or_default().push(i);
        }
        steps.push(PlannedStep {
            index: i,
            name: s.name.clone(),
            step_type: step_type.unwrap_or(StepType::Deploy),
            outputs,
            inputs,
            waits_for: Vec::new(),
        });
    }
    for (output, by) in &producers {
        if by.len() > 1 {
            errors.push(LaunchError::DuplicateOutput {
                output: output.clone(),
                steps: by.iter().map(|&i| ids[i].clone()).collect(),
            });
        }
    }
    // Without a mode, steps run as listed unless one reads an output of a step listed after it
    // (as SREWorks' `test_workflow_graph.yaml` does): then the inputs make the graph (DAG).
    let forward = steps.iter().enumerate().any(|(i, s)| {
        s.inputs.iter().any(|input| producers.get(input).is_some_and(|by| by.iter().any(|&p| p >= i)))
    });
    let mode = explicit.unwrap_or(if forward { WorkflowMode::Dag } else { WorkflowMode::StepByStep });
    for i in 0..steps.len() {
        let mut waits = Vec::new();
        for input in &steps[i].inputs {
            match producers.get(input) {
                None => {
                    errors.push(LaunchError::UnknownStepInput { step: ids[i].clone(), input: input.clone() })
                }
                Some(by) => {
                    for &p in by {
                        if mode == WorkflowMode::StepByStep && p >= i {
                            errors.push(LaunchError::InputFromLaterStep {
                                step: ids[i].clone(),
                                input: input.clone(),
                                producer: ids[p].clone(),
                            });
                        }
                        if !waits.contains(&p) {
                            waits.push(p);
                        }
                    }
                }
            }
        }
        steps[i].waits_for = waits;
    }
    let order = match mode {
        WorkflowMode::StepByStep => (0..steps.len()).collect(),
        WorkflowMode::Dag => {
            let edges: Vec<Vec<usize>> = steps.iter().map(|s| s.waits_for.clone()).collect();
            match topo_order(&edges) {
                Ok(order) => order,
                Err(cycles) => {
                    for members in cycles {
                        errors.push(LaunchError::WorkflowCycle {
                            members: members.into_iter().map(|i| ids[i].clone()).collect(),
                        });
                    }
                    Vec::new()
                }
            }
        }
    };
    (errors.len() == first_error).then_some(WorkflowPlan { mode, implicit: false, steps, order })
}

fn implicit_workflow(mode: WorkflowMode) -> WorkflowPlan {
    WorkflowPlan {
        mode,
        implicit: true,
        steps: vec![PlannedStep {
            index: 0,
            name: None,
            step_type: StepType::Deploy,
            outputs: Vec::new(),
            inputs: Vec::new(),
            waits_for: Vec::new(),
        }],
        order: vec![0],
    }
}

/// A topological order of nodes `0..waits_for.len()`, where node `i` comes after every node in
/// `waits_for[i]`; among nodes ready at the same time the lowest index comes first. On a cycle,
/// every cycle (a strongly connected set of nodes, or a node waiting for itself), each sorted,
/// ordered by lowest member.
pub fn topo_order(waits_for: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = waits_for.len();
    let mut pending: Vec<usize> = waits_for.iter().map(|w| w.iter().collect::<BTreeSet<_>>().len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, w) in waits_for.iter().enumerate() {
        for &d in w.iter().collect::<BTreeSet<_>>() {
            if d < n {
                dependents[d].push(i);
            } else {
                pending[i] -= 1;
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            pending[j] -= 1;
            if pending[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // The nodes left over are on a cycle or wait for one: keep those on one.
    let left: BTreeSet<usize> = (0..n).filter(|&i| pending[i] > 0).collect();
    let reach = |from: usize| -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<usize> =
            waits_for[from].iter().copied().filter(|d| left.contains(d)).collect();
        while let Some(x) = queue.pop_front() {
            if seen.insert(x) {
                queue.extend(waits_for[x].iter().copied().filter(|d| left.contains(d)));
            }
        }
        seen
    };
    let reaches: BTreeMap<usize, BTreeSet<usize>> = left.iter().map(|&i| (i, reach(i))).collect();
    let mut placed = BTreeSet::new();
    let mut cycles = Vec::new();
    for &i in &left {
        if placed.contains(&i) || !reaches[&i].contains(&i) {
            continue;
        }
        let members: Vec<usize> = left
            .iter()
            .copied()
            .filter(|&j| j == i || (reaches[&i].contains(&j) && reaches[&j].contains(&i)))
            .collect();
        placed.extend(members.iter().copied());
        cycles.push(members);
    }
    Err(cycles)
}
