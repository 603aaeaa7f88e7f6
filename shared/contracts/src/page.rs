//! The list envelope `{items, page, pageSize, total}` and its query parameters.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Largest page a list endpoint returns.
pub const MAX_PAGE_SIZE: u64 = 500;
/// Page size when the client names none.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 1-based page number.
    pub page: u64,
    pub page_size: u64,
    /// Number of items across all pages.
    pub total: u64,
}

/// `page` and `pageSize` query parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, IntoParams, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Items per page (default 20, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
}

impl PageQuery {
    /// Checks explicit values: `page` ≥ 1 and 1 ≤ `pageSize` ≤ 500. Out-of-range values are an
    /// error rather than silently clamped, so a client never misreads which page it got.
    pub fn checked(page: Option<u64>, page_size: Option<u64>) -> Result<Self, Vec<crate::FieldError>> {
        let mut errors = Vec::new();
        if page == Some(0) {
            errors.push(crate::FieldError::new("page", "must be at least 1"));
        }
        if let Some(n) = page_size
            && !(1..=MAX_PAGE_SIZE).contains(&n)
        {
            errors.push(crate::FieldError::new("pageSize", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        if errors.is_empty() { Ok(Self { page, page_size }) } else { Err(errors) }
    }

    /// The page number, 1-based, after defaults.
    pub fn page(&self) -> u64 {
        self.page.unwrap_or(1).max(1)
    }
    /// The page size after defaults and the upper bound.
    pub fn page_size(&self) -> u64 {
        self.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE)
    }
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page() - 1).saturating_mul(self.page_size())
    }
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, q: &PageQuery, total: u64) -> Self {
        Self { items, page: q.page(), page_size: q.page_size(), total }
    }
}
