//! Why a component could not be rendered.
//!
//! Validation collects every problem it can find in one pass, so an operator fixes a launch file
//! once instead of once per error. Messages name the place (workload, trait, manifest) and the
//! field; they never quote Secret values.

use std::fmt;

use super::traits::SUPPORTED_TRAITS;

/// The component types [`super::render`] turns into objects.
pub const SUPPORTED_COMPONENT_TYPES: [&str; 3] = ["K8S_MICROSERVICE", "K8S_JOB", "K8S_MANIFESTS"];

/// Where in a command a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The command's target (namespace, app instance, component instance).
    Target,
    /// The workload spec (`K8S_MICROSERVICE`, `K8S_JOB`) or the `{"manifests": [...]}` wrapper.
    Workload,
    /// A trait, by the name it was given under.
    Trait(String),
    /// The object at this index of `manifests`.
    Manifest(usize),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Target => f.write_str("target"),
            Part::Workload => f.write_str("workload"),
            Part::Trait(name) => write!(f, "trait '{name}'"),
            Part::Manifest(i) => write!(f, "manifests[{i}]"),
        }
    }
}

/// One thing wrong with a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub part: Part,
    /// Path of the offending field inside the part (`containers[0].image`, `spec.servicePort`);
    /// empty when the part as a whole is wrong.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.part, self.message)
        } else {
            write!(f, "{}: {}: {}", self.part, self.field, self.message)
        }
    }
}

/// Why [`super::render`] refused a component. [`RenderError::reason`] is the machine reason put in
/// the `failed` event; `Display` is the human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `HELM`, `ABM_HELM`, addons…: not something this executor deploys (yet).
    UnsupportedComponentType { component_type: String },
    /// Traits this executor does not know, in the order given.
    UnknownTrait { unknown: Vec<String> },
    /// The workload, a trait, a manifest or the target is malformed; every problem found.
    InvalidComponent { problems: Vec<Problem> },
}

impl RenderError {
    /// Stable machine reason: `unsupported_component_type`, `UnknownTrait` or `InvalidComponent`.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::UnsupportedComponentType { .. } => "unsupported_component_type",
            RenderError::UnknownTrait { .. } => "UnknownTrait",
            RenderError::InvalidComponent { .. } => "InvalidComponent",
        }
    }

    /// The individual problems of an [`RenderError::InvalidComponent`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            RenderError::InvalidComponent { problems } => problems,
            _ => &[],
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::UnsupportedComponentType { component_type } => write!(
                f,
                "component type '{component_type}' is not supported by the k8s executor (supported: {})",
                SUPPORTED_COMPONENT_TYPES.join(", ")
            ),
            RenderError::UnknownTrait { unknown } => {
                let unknown: Vec<String> = unknown.iter().map(|n| format!("'{n}'")).collect();
                write!(
                    f,
                    "unknown trait {}; supported traits: {}",
                    unknown.join(", "),
                    SUPPORTED_TRAITS.join(", ")
                )
            }
            RenderError::InvalidComponent { problems } => {
                f.write_str("invalid component: ")?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}
