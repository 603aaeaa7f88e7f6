//! `clusters`: registered Kubernetes clusters with their sealed credentials.

use sea_orm::entity::prelude::*;
use sw_contracts::appmeta::ClusterOut;

use super::{CorruptRow, labels_from_db, name_from_db};

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clusters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cluster_id: String,
    pub name: String,
    pub description: Option<String>,
    pub api_url: Option<String>,
    /// `token` or `kubeconfig`; the only thing said about the credentials.
    pub credential_kind: String,
    /// Sealed with [`sw_crypto::seal_credentials`]; never leaves the service unsealed.
    pub credentials: Vec<u8>,
    pub labels: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

// Written by hand so a debug print of a row can never include the sealed credentials.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cluster::Model")
            .field("cluster_id", &self.cluster_id)
            .field("credential_kind", &self.credential_kind)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The public view of this row (without credentials).
    pub fn to_out(&self) -> Result<ClusterOut, CorruptRow> {
        Ok(ClusterOut {
            cluster_id: name_from_db("clusterId", &self.cluster_id)?,
            name: self.name.clone(),
            description: self.description.clone(),
            api_url: self.api_url.clone(),
            credential_kind: self.credential_kind.clone(),
            labels: labels_from_db(&self.labels)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
