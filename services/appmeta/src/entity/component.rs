//! `components`: the components of each app, keyed by (app, component name).

use sea_orm::entity::prelude::*;
use sw_contracts::appmeta::{ComponentOut, ComponentSpec, ComponentType};

use super::{CorruptRow, app_id_from_db, name_from_db};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "components")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub component_name: String,
    /// `K8S_MICROSERVICE`, `K8S_JOB` or `HELM`.
    pub component_type: String,
    pub description: Option<String>,
    /// JSON of the type's spec (the `spec` member of the DTO).
    pub spec: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The spec member of a [`ComponentSpec`] as stored JSON text.
pub fn spec_to_db(spec: &ComponentSpec) -> String {
    let inner = match spec {
        ComponentSpec::K8sMicroservice(s) => serde_json::to_string(s),
        ComponentSpec::K8sJob(s) => serde_json::to_string(s),
        ComponentSpec::Helm(s) => serde_json::to_string(s),
    };
    // Specs are plain data (strings, numbers, JSON values): serialising cannot fail.
    inner.unwrap_or_else(|_| "{}".to_owned())
}

impl Model {
    pub fn component_type(&self) -> Result<ComponentType, CorruptRow> {
        ComponentType::parse(&self.component_type)
            .ok_or_else(|| CorruptRow::new("componentType", &self.component_type))
    }

    pub fn to_spec(&self) -> Result<ComponentSpec, CorruptRow> {
        let spec: serde_json::Value =
            serde_json::from_str(&self.spec).map_err(|e| CorruptRow::new("spec", e))?;
        let tagged = serde_json::json!({ "componentType": self.component_type()?.as_str(), "spec": spec });
        serde_json::from_value(tagged).map_err(|e| CorruptRow::new("spec", e))
    }

    /// The public view of this row.
    pub fn to_out(&self) -> Result<ComponentOut, CorruptRow> {
        Ok(ComponentOut {
            app_id: app_id_from_db(&self.app_id)?,
            component_name: name_from_db("componentName", &self.component_name)?,
            description: self.description.clone(),
            spec: self.to_spec()?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
