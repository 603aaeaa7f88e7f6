//! `app_package_component`: the component zips of one generation of an app package.

use sea_orm::entity::prelude::*;
use sw_contracts::packages::ComponentPackageOut;

use super::{CorruptRow, component_package, md5_status_from_db, unsigned};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "app_package_component")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_package_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    /// Index in `meta.yaml`'s `componentPackages`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub component_package_id: i64,
    pub relative_path: String,
    /// `MATCHED`, `MISMATCHED` or `NOT_DECLARED` (the declaration is per app package).
    pub md5_status: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The public view of this link with the component row it points at.
    pub fn to_out(&self, c: &component_package::Model) -> Result<ComponentPackageOut, CorruptRow> {
        Ok(ComponentPackageOut {
            component_type: c.component_type.clone(),
            component_name: c.component_name.clone(),
            package_version: c.package_version.clone(),
            relative_path: self.relative_path.clone(),
            size: unsigned("size", c.size)?,
            md5: c.md5.clone(),
            sha256: c.sha256.clone(),
            md5_status: md5_status_from_db(&self.md5_status)?,
        })
    }
}
