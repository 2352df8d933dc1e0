//! Every operation of the controller's REST API, in one table: method, path,
//! operation id, who may call it, the types it takes and answers, and its
//! documented answers. Each becomes a type implementing [`Endpoint`] (the
//! typed client calls those), and [`operations`] lists them all for the
//! OpenAPI document's paths.

use schemars::{Schema, SchemaGenerator};

use crate::access::{AuditEntryView, AuditQuery, GrantRequest, MeView, RoleGrantView};
use crate::activity::{Activity, ActivityQuery};
use crate::alerts::{
    AlertList, AlertQuery, ChannelCreate, ChannelCreated, ChannelList, DeliveryList, DeliveryQuery,
    DeliveryView, RuleCreate, RuleList, RuleView, SilenceCreate, SilenceList, SilenceView,
};
use crate::bulk::{
    BulkJobItemPage, BulkJobItemQuery, BulkJobList, BulkJobListQuery, BulkJobPreview,
    BulkJobRequest, BulkJobView,
};
use crate::connectors::{
    ConnectorAllowList, ConnectorConfig, ConnectorList, ConnectorListQuery, ConnectorView,
    DryRunReport,
};
use crate::console::{ConsoleCredentialRequest, ConsoleCredentialResponse};
use crate::endpoint::{
    Access, Endpoint, Export, Json, Method, NoBody, PlainText, RequestBody, ResponseBody,
};
use crate::enrollment::{
    CredentialsRequest, CredentialsResponse, RegisterRequest, RegisterResponse, RekeyRequest,
};
use crate::exports::{AuditExportQuery, NodeExportQuery, UsageExportQuery};
use crate::keys::{GovernancePatch, KeyCreate, KeyList, KeySummaryView, KeyView};
use crate::nodes::{
    ConfigTemplateQuery, NodeDetail, NodeList, NodeListQuery, NodeSummary, NodeView,
};
use crate::orgs::{self, IntegratorRequest, IntegratorResponse, IntegratorView, OrgView};
use crate::params::{
    IntegratorPath, KeyPath, NoParams, NodeConnectorPath, NodePath, OrgNodePath, OrgPath,
    OrgUuidPath, RoleGrantPath, RulepackPath,
};
use crate::policies::{
    AssignmentCreate, AssignmentList, AssignmentView, NodeAssign, NodePolicies, RulepackCreate,
    RulepackList, RulepackRevisions, RulepackView,
};
use crate::service::{
    ConfigTemplate, ControlKeyRotated, ControlKeyView, Health, IngestStats, Readiness,
};
use crate::tokens::{self, TokenView};
use crate::usage::{
    BillingEstimate, HoursPageQuery, HoursQuery, NodeEventsSummary, NodeSloSummary, PeriodQuery,
    UsageSummary,
};
use ritma_protocol::diagnostics::DiagnosticBundle;
use ritma_protocol::policy::{PolicyFetchRequest, PolicyFetchResponse};

/// One operation as the OpenAPI document describes it.
#[derive(Clone, Copy)]
pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub description: Option<&'static str>,
    /// Success statuses and what each means.
    pub ok: &'static [(u16, &'static str)],
    /// Refusals: status and the name of the shared response
    /// (`#/components/responses/...`).
    pub errors: &'static [(u16, &'static str)],
    /// The schemas of its parts, from its types.
    pub schemas: fn(&mut Generators) -> OperationSchemas,
}

/// One generator for what the controller reads (path, query, body) and one
/// for what it writes (answers), so `deny_unknown_fields` shows on requests.
pub struct Generators {
    pub requests: SchemaGenerator,
    pub responses: SchemaGenerator,
}

pub struct OperationSchemas {
    /// The path parameters as one object schema (a property each).
    pub path: Schema,
    /// The query parameters as one object schema.
    pub query: Schema,
    pub request: Option<Schema>,
    /// The success answer's OpenAPI `content`.
    pub response: Option<serde_json::Value>,
}

fn schemas_of<E: Endpoint>(g: &mut Generators) -> OperationSchemas {
    OperationSchemas {
        path: inline_schema::<E::Path>(&mut g.requests),
        query: inline_schema::<E::Query>(&mut g.requests),
        request: <E::Request as RequestBody>::schema(&mut g.requests),
        response: <E::Response as ResponseBody>::content(&mut g.responses),
    }
}

/// `T`'s own schema (not a reference to it), in the generator's dialect.
fn inline_schema<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = T::json_schema(generator);
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema
}

macro_rules! endpoints {
    ($(
        $name:ident = $method:ident $path:literal, $id:literal, $access:ident,
        summary $summary:literal,
        $(description $description:literal,)?
        path $path_type:ty, query $query:ty, body $request:ty => $response:ty,
        ok [$($ok:literal $ok_text:literal),+],
        errors [$($status:literal $error:ident),*];
    )*) => {
        $(
            #[doc = $summary]
            #[doc = ""]
            #[doc = concat!("`", stringify!($method), " ", $path, "`")]
            pub struct $name;

            impl Endpoint for $name {
                const METHOD: Method = endpoints!(@method $method);
                const PATH: &'static str = $path;
                const OPERATION_ID: &'static str = $id;
                type Path = $path_type;
                type Query = $query;
                type Request = $request;
                type Response = $response;
            }
        )*

        /// Every operation, in the document's order.
        pub fn operations() -> Vec<Operation> {
            vec![$(
                Operation {
                    method: <$name as Endpoint>::METHOD,
                    path: $path,
                    operation_id: $id,
                    access: Access::$access,
                    summary: $summary,
                    description: endpoints!(@opt $($description)?),
                    ok: &[$(($ok, $ok_text)),+],
                    errors: &[$(($status, stringify!($error))),*],
                    schemas: schemas_of::<$name>,
                },
            )*]
        }
    };
    (@method GET) => { Method::Get };
    (@method POST) => { Method::Post };
    (@method PUT) => { Method::Put };
    (@method PATCH) => { Method::Patch };
    (@method DELETE) => { Method::Delete };
    (@opt) => { None };
    (@opt $text:literal) => { Some($text) };
}

endpoints! {
    Healthz = GET "/healthz", "healthz", Public,
        summary "Liveness",
        path NoParams, query NoParams, body NoBody => Json<Health>,
        ok [200 "The process is up."],
        errors [];
    Metrics = GET "/metrics", "metrics", MetricsToken,
        summary "Prometheus metrics (text format 0.0.4)",
        description "Served on this port only with the metrics token\n(RITMA_METRICS_TOKEN); without one configured it answers 404 here,\nand RITMA_METRICS_ADDR gives a separate listener. Metric names and\nlabels: README.md, \"Metrics\".",
        path NoParams, query NoParams, body NoBody => PlainText,
        ok [200 "The metrics."],
        errors [401 Unauthenticated, 404 NotFound, 429 RateLimited];
    Readyz = GET "/readyz", "readyz", Public,
        summary "Readiness (database and bus reachable) with ingest counters",
        path NoParams, query NoParams, body NoBody => Json<Readiness>,
        ok [200 "Ready."],
        errors [503 NotReady];
    RegisterNode = POST "/api/nodes/register", "nodeRegister", Public,
        summary "Enroll a node with an enrollment token and its own NKey public key",
        path NoParams, query NoParams, body Json<RegisterRequest> => Json<RegisterResponse>,
        ok [200 "Enrolled (or enrolled again with the same key)."],
        errors [400 BadRequest, 401 Refused, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    RefreshNodeCredentials = POST "/api/nodes/{id}/credentials", "nodeCredentials", Public,
        summary "A fresh bus credential for a node that signs a challenge with its key",
        path NodePath, query NoParams, body Json<CredentialsRequest> => Json<CredentialsResponse>,
        ok [200 "A fresh JWT."],
        errors [400 BadRequest, 401 Refused, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    RekeyNode = POST "/api/nodes/{id}/rekey", "nodeRekey", Public,
        summary "Move a node to a new key, signed by its old key (the old key is revoked at the broker; at most once an hour per node, else 429 `rekey_too_soon` with Retry-After)",
        path NodePath, query NoParams, body Json<RekeyRequest> => Json<CredentialsResponse>,
        ok [200 "Re-keyed; a credential for the new key."],
        errors [400 BadRequest, 401 Refused, 404 NotFound, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    MintConsoleBusCredential = POST "/api/console/bus-credential", "consoleBusCredential", ConsoleService,
        summary "The console's live-feed bus credential (console service token only)",
        description "Only the console's service principal may call this: the bearer must be\n`RITMA_CONSOLE_SERVICE_TOKEN`; the admin token, people's access tokens\nand nodes are refused (401), and refusals are rate-limited per address.\nReturns a user JWT in the controller account that may subscribe to\n`ritma.*.*.state.node.*` (every org's state changes) and nothing else,\npublish nothing, hold at most 4 subscriptions, expiring after\n`RITMA_CONSOLE_BUS_TTL_SECS` (default 3600). The console makes the key\nand renews the credential before it expires. Every mint is audited\n(`console.bus_credential`).",
        path NoParams, query NoParams, body Json<ConsoleCredentialRequest> => Json<ConsoleCredentialResponse>,
        ok [201 "Minted."],
        errors [400 BadRequest, 401 Unauthenticated, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    GetMe = GET "/api/me", "me", Principal,
        summary "The calling principal and its orgs and roles",
        path NoParams, query NoParams, body NoBody => Json<MeView>,
        ok [200 "The principal."],
        errors [401 Unauthenticated, 403 Forbidden, 429 RateLimited, 503 Unavailable];
    ListOrgs = GET "/api/orgs", "orgList", Principal,
        summary "Every org",
        path NoParams, query NoParams, body NoBody => Json<Vec<OrgView>>,
        ok [200 "Orgs."],
        errors [401 Unauthenticated, 403 Forbidden, 429 RateLimited, 503 Unavailable];
    CreateOrg = POST "/api/orgs", "orgCreate", Principal,
        summary "Create an org (its own NATS account)",
        path NoParams, query NoParams, body Json<orgs::CreateOrg> => Json<OrgView>,
        ok [201 "Created."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    ListIntegrators = GET "/api/orgs/{org}/integrator-credentials", "integratorList", Principal,
        summary "The org's integrator credentials (public keys, scopes, state)",
        path OrgPath, query NoParams, body NoBody => Json<Vec<IntegratorView>>,
        ok [200 "Credentials."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    MintIntegratorCredentials = POST "/api/orgs/{org}/integrator-credentials", "integratorCredentials", Principal,
        summary "Read-only bus credentials for an integrator (key made by the integrator)",
        description "Grants node telemetry and state changes of the org (or tenant); node commands and the audit trail only when named in `include`. A public key belongs to one org: issuing it in another org (or for a node's key) is refused with 409. Issuing it again in the same org replaces the entry (tenant, name, subjects, expiry) and clears its revocation.",
        path OrgPath, query NoParams, body Json<IntegratorRequest> => Json<IntegratorResponse>,
        ok [201 "Minted."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    RevokeIntegrator = DELETE "/api/orgs/{org}/integrator-credentials/{public_key}", "integratorRevoke", Principal,
        summary "Revoke an integrator credential (pushed to the broker at once)",
        path IntegratorPath, query NoParams, body NoBody => NoBody,
        ok [204 "Revoked."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetIngestStats = GET "/api/orgs/{org}/ingest-stats", "orgIngestStats", Principal,
        summary "What the ingest did with the org's messages, per hour (fair-share budgets)",
        description "Per hour since `hours` ago: messages accepted, throttled over their node's or the org's budget (acked, not written), and invalid messages kept as dead letters or dropped over the org's dead-letter budget; `totals` over the window (including `pending`, this controller's counts not yet written, at most a few seconds' worth) and `budgets`, the limits in force (per second, with burst; 0 is unlimited).",
        path OrgPath, query HoursQuery, body NoBody => Json<IngestStats>,
        ok [200 "Counters: org_id, from, to, budgets, totals, pending, hours."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListAudit = GET "/api/orgs/{org}/audit", "auditList", Principal,
        summary "The org's hash-chained audit trail, newest first",
        path OrgPath, query AuditQuery, body NoBody => Json<Vec<AuditEntryView>>,
        ok [200 "Audit records."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListRoles = GET "/api/orgs/{org}/roles", "roleList", Principal,
        summary "Role grants in the org",
        path OrgPath, query NoParams, body NoBody => Json<Vec<RoleGrantView>>,
        ok [200 "Grants."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GrantRole = POST "/api/orgs/{org}/roles", "roleGrant", Principal,
        summary "Grant a role in the org to a subject",
        path OrgPath, query NoParams, body Json<GrantRequest> => Json<RoleGrantView>,
        ok [201 "Granted."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    RevokeRole = DELETE "/api/orgs/{org}/roles/{subject}/{role}", "roleRevoke", Principal,
        summary "Revoke a role grant",
        path RoleGrantPath, query NoParams, body NoBody => NoBody,
        ok [204 "Revoked."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable];
    ListBulkJobs = GET "/api/orgs/{org}/bulk-jobs", "bulkJobList", Principal,
        summary "The org's recent bulk jobs, newest first, with their counts (an explicit selection as its number of ids)",
        path OrgPath, query BulkJobListQuery, body NoBody => Json<BulkJobList>,
        ok [200 "Jobs."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateBulkJob = POST "/api/orgs/{org}/bulk-jobs", "bulkJobCreate", Principal,
        summary "Start a bulk job (assign a rulepack, add or remove labels, decommission) over explicit ids (at most 10,000; ids not in the org are skipped, never acted on) or every node matching a filter; audited, run in pages by the bulk worker, progress on ritma.<org>.jobs. The same idempotency_key returns the job it started (200). 429 when the org already has its maximum of pending or running jobs.",
        path OrgPath, query NoParams, body Json<BulkJobRequest> => Json<BulkJobView>,
        ok [200 "The job an earlier request with this idempotency_key started.", 201 "The job, pending."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    PreviewBulkJob = POST "/api/orgs/{org}/bulk-jobs/preview", "bulkJobPreview", Principal,
        summary "What a bulk job would act on (count and a sample), changing nothing",
        path OrgPath, query NoParams, body Json<BulkJobRequest> => Json<BulkJobPreview>,
        ok [200 "The preview."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    GetBulkJob = GET "/api/orgs/{org}/bulk-jobs/{id}", "bulkJobGet", Principal,
        summary "One bulk job with its counts",
        path OrgUuidPath, query NoParams, body NoBody => Json<BulkJobView>,
        ok [200 "The job."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListBulkJobItems = GET "/api/orgs/{org}/bulk-jobs/{id}/items", "bulkJobItems", Principal,
        summary "A bulk job's result per node, in node id order (keyset pages)",
        path OrgUuidPath, query BulkJobItemQuery, body NoBody => Json<BulkJobItemPage>,
        ok [200 "One page of results."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListNodes = GET "/api/orgs/{org}/nodes", "nodeList", Principal,
        summary "The org's nodes, filtered, sorted and paged",
        path OrgPath, query NodeListQuery, body NoBody => Json<NodeList>,
        ok [200 "A page."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetNodeSummary = GET "/api/orgs/{org}/nodes/summary", "nodeSummary", Principal,
        summary "Node counts by status",
        path OrgPath, query NoParams, body NoBody => Json<NodeSummary>,
        ok [200 "Counts."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetNode = GET "/api/orgs/{org}/nodes/{id}", "nodeGet", Principal,
        summary "One node with its recent status history",
        path OrgNodePath, query NoParams, body NoBody => Json<NodeDetail>,
        ok [200 "The node."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    DecommissionNode = POST "/api/orgs/{org}/nodes/{id}/decommission", "nodeDecommission", Principal,
        summary "Decommission a node (its key is revoked at the broker at once); idempotent",
        path OrgNodePath, query NoParams, body NoBody => Json<NodeView>,
        ok [200 "Decommissioned."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    DiagnoseNode = POST "/api/orgs/{org}/nodes/{id}/diagnose", "nodeDiagnose", Principal,
        summary "Ask the node for its diagnostic bundle over its command subject (signed, audited, budget per node)",
        path OrgNodePath, query NoParams, body NoBody => Json<DiagnosticBundle>,
        ok [200 "The node's bundle (versions, configuration and identity without secrets, credential expiry, spool, recent problems redacted); schema `diagnostic_bundle` of the bus contract."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable, 504 NodeUnreachable];
    ListTokens = GET "/api/orgs/{org}/enrollment-tokens", "tokenList", Principal,
        summary "The org's enrollment tokens (never their secrets)",
        path OrgPath, query NoParams, body NoBody => Json<Vec<TokenView>>,
        ok [200 "Tokens."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateToken = POST "/api/orgs/{org}/enrollment-tokens", "tokenCreate", Principal,
        summary "Create an enrollment token; its secret is shown only here",
        path OrgPath, query NoParams, body Json<tokens::CreateToken> => Json<TokenView>,
        ok [201 "Created, with the secret."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    RevokeToken = DELETE "/api/orgs/{org}/enrollment-tokens/{id}", "tokenRevoke", Principal,
        summary "Revoke an enrollment token",
        path OrgUuidPath, query NoParams, body NoBody => NoBody,
        ok [204 "Revoked."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    FetchNodePolicy = POST "/api/nodes/{id}/policy", "nodePolicyFetch", Public,
        summary "The policy bundle assigned to a node that signs a challenge with its key (the node verifies its SHA-256)",
        path NodePath, query NoParams, body Json<PolicyFetchRequest> => Json<PolicyFetchResponse>,
        ok [200 "The bundle, or null when nothing is assigned."],
        errors [400 BadRequest, 401 Refused, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    GetNodePolicies = GET "/api/nodes/{id}/policies", "nodePolicies", Principal,
        summary "Assigned vs applied policy of a node, drift, and every assignment that matches it (winner first)",
        path NodePath, query NoParams, body NoBody => Json<NodePolicies>,
        ok [200 "The node's policy state."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    AssignNodePolicy = POST "/api/nodes/{id}/policies", "nodePolicyAssign", Principal,
        summary "Assign a rulepack to this node (replaces its previous node-scoped assignment); pushed as a command",
        path NodePath, query NoParams, body Json<NodeAssign> => Json<AssignmentView>,
        ok [201 "The assignment."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    ListNodeConnectors = GET "/api/nodes/{id}/connectors", "nodeConnectors", Principal,
        summary "The node's connectors with their last dry run",
        path NodePath, query NoParams, body NoBody => Json<ConnectorList>,
        ok [200 "Connectors."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    PutNodeConnector = PUT "/api/nodes/{id}/connectors/{cid}", "nodeConnectorPut", Principal,
        summary "Create or replace a typed connector config (secrets only as env:NAME or file:/path references)",
        path NodeConnectorPath, query NoParams, body Json<ConnectorConfig> => Json<ConnectorView>,
        ok [200 "Replaced (201 when created).", 201 "Created."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    DeleteNodeConnector = DELETE "/api/nodes/{id}/connectors/{cid}", "nodeConnectorDelete", Principal,
        summary "Remove a connector",
        path NodeConnectorPath, query NoParams, body NoBody => NoBody,
        ok [204 "Removed."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    DryRunNodeConnector = POST "/api/nodes/{id}/connectors/{cid}/dry-run", "nodeConnectorDryRun", Principal,
        summary "Run the connector's checks on the node now (bus request/reply); nothing is changed on the node",
        path NodeConnectorPath, query NoParams, body NoBody => Json<DryRunReport>,
        ok [200 "The node's findings."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable, 504 NodeUnreachable];
    GetNodeSloSummary = GET "/api/nodes/{id}/slo-summary", "nodeSloSummary", Principal,
        summary "Hourly SLO counts of a node (paged) and their totals per label",
        description "Buckets in (hour, component, operation, outcome) order, `limit` per page (default 500, at most 1000); pass `next_cursor` back as `cursor` for the next page (null on the last). `totals` covers the whole window, largest first, at most 1000 labels (`totals_truncated`). A node has at most 64 component/operation labels and 16 outcomes per hour; the excess is counted under `other`.",
        path NodePath, query HoursPageQuery, body NoBody => Json<NodeSloSummary>,
        ok [200 "SLO buckets: node_id, from, to, totals, totals_truncated, buckets, next_cursor."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    PatchKeyGovernance = PATCH "/api/orgs/{org}/keys/{key_id}/governance", "keyGovernance", Principal,
        summary "Change a signing key's governance (org owners and admins; audited; through ritma_cloud when configured)",
        description "Key ids are per org. An id with a path trick (`/`, `%`, `..`, a leading `.`, anything but letters, digits, `-`, `_`, `.`, `:`) is refused with 400.",
        path KeyPath, query NoParams, body Json<GovernancePatch> => Json<KeyView>,
        ok [200 "The key."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 502 UpstreamUnavailable, 503 Unavailable];
    GetConfigTemplate = GET "/api/orgs/{org}/nodes/config-template", "nodeConfigTemplate", Principal,
        summary "Environment, systemd unit and install command for a new node",
        path OrgPath, query ConfigTemplateQuery, body NoBody => Json<ConfigTemplate>,
        ok [200 "The template."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetNodeEvents = GET "/api/orgs/{org}/nodes/{id}/events", "nodeEvents", Principal,
        summary "Enforcement decisions (allow/deny/throttle/isolate) per hour (paged), no payloads",
        description "Buckets in hour order, `limit` per page (default 500, at most 1000); pass `next_cursor` back as `cursor` for the next page (null on the last). `totals` covers the whole window.",
        path OrgNodePath, query HoursPageQuery, body NoBody => Json<NodeEventsSummary>,
        ok [200 "Event buckets: node_id, from, to, totals, buckets, next_cursor."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListRulepacks = GET "/api/orgs/{org}/rulepacks", "rulepackList", Principal,
        summary "The latest revision of every rulepack",
        path OrgPath, query NoParams, body NoBody => Json<RulepackList>,
        ok [200 "Rulepacks."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateRulepack = POST "/api/orgs/{org}/rulepacks", "rulepackCreate", Principal,
        summary "A new content-hashed revision of a rulepack (the same content as the latest returns it, 200)",
        path OrgPath, query NoParams, body Json<RulepackCreate> => Json<RulepackView>,
        ok [200 "The latest revision already has this content.", 201 "The new revision."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    GetRulepack = GET "/api/orgs/{org}/rulepacks/{name}", "rulepackGet", Principal,
        summary "Every revision of a rulepack, newest first, with content",
        path RulepackPath, query NoParams, body NoBody => Json<RulepackRevisions>,
        ok [200 "Revisions."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListAssignments = GET "/api/orgs/{org}/policy-assignments", "assignmentList", Principal,
        summary "Policy assignments with the number of nodes each governs",
        path OrgPath, query NoParams, body NoBody => Json<AssignmentList>,
        ok [200 "Assignments."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateAssignment = POST "/api/orgs/{org}/policy-assignments", "assignmentCreate", Principal,
        summary "Assign a rulepack to the org, a tenant, a label (key=value) or a node; precedence node > label > tenant > org",
        path OrgPath, query NoParams, body Json<AssignmentCreate> => Json<AssignmentView>,
        ok [201 "The assignment."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    DeleteAssignment = DELETE "/api/orgs/{org}/policy-assignments/{id}", "assignmentDelete", Principal,
        summary "Remove an assignment; affected nodes are told",
        path OrgUuidPath, query NoParams, body NoBody => NoBody,
        ok [204 "Removed."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListConnectors = GET "/api/orgs/{org}/connectors", "connectorList", Principal,
        summary "Every connector of the org with its last result (filters kind, outcome)",
        path OrgPath, query ConnectorListQuery, body NoBody => Json<ConnectorList>,
        ok [200 "Connectors."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListChannels = GET "/api/orgs/{org}/notification-channels", "notificationChannelList", Principal,
        summary "The org's notification channels (URLs redacted, secrets never shown)",
        path OrgPath, query NoParams, body NoBody => Json<ChannelList>,
        ok [200 "The channels."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateChannel = POST "/api/orgs/{org}/notification-channels", "notificationChannelCreate", Principal,
        summary "Add a webhook, Slack-style or e-mail channel (alert admins; audited). Internal targets are refused unless the operator allows them",
        path OrgPath, query NoParams, body Json<ChannelCreate> => Json<ChannelCreated>,
        ok [201 "The channel; a webhook's signing secret is in this answer only."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable];
    DeleteChannel = DELETE "/api/orgs/{org}/notification-channels/{id}", "notificationChannelDelete", Principal,
        summary "Delete a channel no rule sends to (audited)",
        path OrgUuidPath, query NoParams, body NoBody => NoBody,
        ok [204 "Deleted."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable];
    TestChannel = POST "/api/orgs/{org}/notification-channels/{id}/test", "notificationChannelTest", Principal,
        summary "Send a test notification now; the outcome is answered and kept in the delivery log",
        path OrgUuidPath, query NoParams, body NoBody => Json<DeliveryView>,
        ok [200 "The delivery, delivered or failed."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListDeliveries = GET "/api/orgs/{org}/notification-channels/{id}/deliveries", "notificationChannelDeliveries", Principal,
        summary "The channel's delivery log, newest first",
        path OrgUuidPath, query DeliveryQuery, body NoBody => Json<DeliveryList>,
        ok [200 "Deliveries."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListAlertRules = GET "/api/orgs/{org}/alert-rules", "alertRuleList", Principal,
        summary "The org's alert rules",
        path OrgPath, query NoParams, body NoBody => Json<RuleList>,
        ok [200 "The rules."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateAlertRule = POST "/api/orgs/{org}/alert-rules", "alertRuleCreate", Principal,
        summary "Add an alert rule (alert admins; control-plane events for operators only; audited); nodes already in the condition are alerted on at once",
        path OrgPath, query NoParams, body Json<RuleCreate> => Json<RuleView>,
        ok [201 "The rule."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable];
    DeleteAlertRule = DELETE "/api/orgs/{org}/alert-rules/{id}", "alertRuleDelete", Principal,
        summary "Delete a rule and its alerts, without notifications (audited)",
        path OrgUuidPath, query NoParams, body NoBody => NoBody,
        ok [204 "Deleted."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListSilences = GET "/api/orgs/{org}/silences", "silenceList", Principal,
        summary "Active silences and those ended in the last 7 days",
        path OrgPath, query NoParams, body NoBody => Json<SilenceList>,
        ok [200 "Silences."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    CreateSilence = POST "/api/orgs/{org}/silences", "silenceCreate", Principal,
        summary "Silence matching alerts for a while (maintenance; node admins and up; audited). At least one matcher; at most 90 days",
        path OrgPath, query NoParams, body Json<SilenceCreate> => Json<SilenceView>,
        ok [201 "The silence."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 429 RateLimited, 503 Unavailable];
    EndSilence = DELETE "/api/orgs/{org}/silences/{id}", "silenceEnd", Principal,
        summary "End a silence now (kept in the list; audited); what it held back is sent",
        path OrgUuidPath, query NoParams, body NoBody => NoBody,
        ok [204 "Ended."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListAlerts = GET "/api/orgs/{org}/alerts", "alertList", Principal,
        summary "The org's alerts (pending and firing by default)",
        path OrgPath, query AlertQuery, body NoBody => Json<AlertList>,
        ok [200 "Alerts, newest first."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ExportNodes = GET "/api/orgs/{org}/exports/nodes", "exportNodes", Principal,
        summary "The org's inventory with the node list's filters, streamed (CSV cells that could run as spreadsheet formulas are defused with a leading apostrophe)",
        path OrgPath, query NodeExportQuery, body NoBody => Export,
        ok [200 "The rows, streamed (CSV with a header row, or one JSON array), as an attachment."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ExportAudit = GET "/api/orgs/{org}/exports/audit", "exportAudit", Principal,
        summary "The org's audit trail, newest first, streamed (auditors)",
        path OrgPath, query AuditExportQuery, body NoBody => Export,
        ok [200 "The rows, streamed (CSV with a header row, or one JSON array), as an attachment."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ExportUsage = GET "/api/orgs/{org}/exports/usage", "exportUsage", Principal,
        summary "Metering per tenant and UTC day of a month",
        path OrgPath, query UsageExportQuery, body NoBody => Export,
        ok [200 "The rows, streamed (CSV with a header row, or one JSON array), as an attachment."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetAllowList = GET "/api/orgs/{org}/connector-allow-list", "connectorAllowListGet", Principal,
        summary "What the org's connectors may make its nodes touch (secret folders, env prefixes, endpoints); the default when never set",
        path OrgPath, query NoParams, body NoBody => Json<ConnectorAllowList>,
        ok [200 "The allow-list."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    PutAllowList = PUT "/api/orgs/{org}/connector-allow-list", "connectorAllowListPut", Principal,
        summary "Replace the org's connector allow-list (org owners; audited). Connectors outside it are refused when saved and before every dry run",
        path OrgPath, query NoParams, body Json<ConnectorAllowList> => Json<ConnectorAllowList>,
        ok [200 "The allow-list now in force."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    ListKeys = GET "/api/orgs/{org}/keys", "keyList", Principal,
        summary "The org's signing keys, with nodes using each and the registry sync state",
        path OrgPath, query NoParams, body NoBody => Json<KeyList>,
        ok [200 "Keys."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    RegisterKey = POST "/api/orgs/{org}/keys", "keyRegister", Principal,
        summary "Register a signing key (admins)",
        path OrgPath, query NoParams, body Json<KeyCreate> => Json<KeyView>,
        ok [201 "The key."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 409 Conflict, 413 TooLarge, 415 BadRequest, 422 BadRequest, 429 RateLimited, 503 Unavailable];
    GetKeySummary = GET "/api/orgs/{org}/keys/summary", "keySummary", Principal,
        summary "Counts by key status, rotations due, nodes with warnings",
        path OrgPath, query NoParams, body NoBody => Json<KeySummaryView>,
        ok [200 "Summary."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetControlKey = GET "/api/orgs/{org}/control-key", "controlKeyGet", Principal,
        summary "The org's control key (nodes pin it; it signs commands, rulepack revisions and policy assignments) and its signed rotations",
        path OrgPath, query NoParams, body NoBody => Json<ControlKeyView>,
        ok [200 "`public_key` (V...) and `rotations`: [{previous, key, signature}], oldest first."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    RotateControlKey = POST "/api/orgs/{org}/control-key/rotate", "controlKeyRotate", Principal,
        summary "Replace the org's control key; the old key signs the hand-over, nodes follow it at their next policy sync without enrolling again, and every rulepack revision whose signature still verifies is signed again",
        path OrgPath, query NoParams, body NoBody => Json<ControlKeyRotated>,
        ok [200 "`public_key`, `previous_key`, `revisions_signed_again`."],
        errors [401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetUsageSummary = GET "/api/orgs/{org}/usage/summary", "usageSummary", Principal,
        summary "Usage per tenant and per day of a month (Decisions, DigFiles, StorageBytes, SnapshotExports)",
        path OrgPath, query PeriodQuery, body NoBody => Json<UsageSummary>,
        ok [200 "Usage."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetActivity = GET "/api/orgs/{org}/activity", "orgActivity", Principal,
        summary "Decisions, DIG files and enforcement decisions by type per time bucket (the dashboard's charts), from per-tenant hourly rollups",
        description "24 hourly buckets for 24h, 28 six-hour buckets for 7d, 30 UTC-day buckets for 30d; the last bucket holds the current time. Every bucket is present (zero when nothing was reported). The work is bounded by tenants x hours of the range, whatever the number of nodes.",
        path OrgPath, query ActivityQuery, body NoBody => Json<Activity>,
        ok [200 "The series."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
    GetBillingEstimate = GET "/api/orgs/{org}/billing/estimate", "billingEstimate", Principal,
        summary "Invoice drafts from the billing daemon (cached) or a labelled estimate from the price table",
        path OrgPath, query PeriodQuery, body NoBody => Json<BillingEstimate>,
        ok [200 "The estimate."],
        errors [400 BadRequest, 401 Unauthenticated, 403 Forbidden, 404 NotFound, 429 RateLimited, 503 Unavailable];
}
