//! Subject and stream names under one prefix, so tests and tenants never collide.

/// The naming scheme: `{prefix}.events.<service>.<entity>.<action>` in stream `{PREFIX}_EVENTS`,
/// `{prefix}.api.<service>.<op>` for request/reply, `{prefix}.cmd.<executor>.<verb>` for commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// `SW_EVENTS` for prefix `sw`.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }
    /// `sw.events.>`.
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }
    /// `sw.events.appmeta.app.created` for `appmeta.app.created`.
    pub fn event_subject(&self, name: &str) -> String {
        format!("{}.events.{name}", self.prefix)
    }
    /// `sw.api.appmeta`.
    pub fn api_group(&self, service: &str) -> String {
        format!("{}.api.{service}", self.prefix)
    }
    /// `sw.api.appmeta.apps.get`.
    pub fn api_subject(&self, service: &str, op: &str) -> String {
        format!("{}.api.{service}.{op}", self.prefix)
    }
    /// `sw.dlq.SW_EVENTS`.
    pub fn dlq_subject(&self, stream: &str) -> String {
        format!("{}.dlq.{stream}", self.prefix)
    }
    /// Redis-style service name for the NATS services API (`[A-Za-z0-9_-]+`).
    pub fn service_name(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix.replace('_', "-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_matches_the_design() {
        let n = Names::new("sw");
        assert_eq!(n.events_stream(), "SW_EVENTS");
        assert_eq!(n.events_wildcard(), "sw.events.>");
        assert_eq!(n.event_subject("appmeta.app.created"), "sw.events.appmeta.app.created");
        assert_eq!(n.api_subject("auth", "token"), "sw.api.auth.token");
        assert_eq!(n.service_name("auth"), "sw-auth");
    }
}
