//! The console's HTML, rendered with maud (escaped by construction). No external
//! asset: one stylesheet served by the process itself, and one script, only on the
//! invitation page (the code rides in the URL fragment, which only a script can read).

use super::view::{ModelCard, TokenLine, UserLine, EXPIRY_HIGHLIGHT_DAYS};
use super::yaml::{self, Change};
use crate::policy::{Grant, Stage};
use crate::store::{AuditPage, ObjectStatus, SessionRow};
use jiff::Timestamp;
use maud::{html, Markup, DOCTYPE};
use std::collections::BTreeMap;

/// Who is looking, for the navigation bar.
pub struct Nav<'a> {
    /// Username.
    pub username: &'a str,
    /// Manages users somewhere: sees Users, Tokens and Not ready.
    pub admin: bool,
    /// Manages users globally: also sees the audit log.
    pub global_admin: bool,
    /// The session's CSRF token (for the logout form).
    pub csrf: &'a str,
    /// Path of the current page.
    pub current: &'static str,
}

fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn when_opt(t: Option<Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_string(), when)
}

/// The page skeleton: title, navigation (when logged in), main content.
fn layout(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    layout_with(title, nav, html! {}, body)
}

/// [`layout`] with extra `head` elements (the one page with a script).
fn layout_with(title: &str, nav: Option<&Nav>, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · stagegate console" }
                link rel="stylesheet" href="/console/style.css";
                (head)
            }
            body {
                header {
                    p.brand { "stagegate" }
                    @if let Some(n) = nav {
                        nav aria-label="Main" {
                            ul {
                                (link(n, "/", "Models"))
                                @if n.admin {
                                    (link(n, "/users", "Users"))
                                    (link(n, "/tokens", "API tokens"))
                                    (link(n, "/problems", "Not ready"))
                                }
                                @if n.global_admin {
                                    (link(n, "/audit", "Audit log"))
                                }
                                (link(n, "/account", "Account"))
                            }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(n.csrf);
                            span { "Signed in as " strong { (n.username) } }
                            " "
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
                footer { p { "Access changes go through git: each screen offers the YAML to commit. Your own password and sessions are on the account page." } }
            }
        }
    }
}

fn link(n: &Nav, href: &'static str, label: &str) -> Markup {
    html! {
        li {
            @if n.current == href {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}

fn change(c: &Change) -> Markup {
    html! {
        details.change {
            summary { (c.title) }
            p.place { (c.place) }
            pre { code { (c.yaml) } }
        }
    }
}

fn grant_list(grants: &[Grant]) -> Markup {
    html! {
        @if grants.is_empty() { span.muted { "no role" } }
        @for (i, g) in grants.iter().enumerate() {
            @if i > 0 { ", " }
            (g.role) " at " (g.scope)
        }
    }
}

/// The login form; `error` is shown above it, `csrf` is the login form's token.
pub fn login(error: Option<&str>, csrf: &str, username: &str) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.login method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="username" { "Username" }
                    input #username type="text" name="username" autocomplete="username" required value=(username);
                }
                p {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
                p { button type="submit" { "Log in" } }
            }
            p { a href="/v1/invitations/accept" { "Have an invitation?" } " Open the link you were sent, or this page with the code you received." }
        },
    )
}

/// An error page (403, 404, refused form, ...).
pub fn error(title: &str, message: &str, nav: Option<&Nav>) -> Markup {
    layout(
        title,
        nav,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the models" } }
        },
    )
}

/// Home: the models the person may see, one column per stage.
pub fn models(nav: &Nav, columns: &BTreeMap<Stage, Vec<ModelCard>>, now: Timestamp) -> Markup {
    layout(
        "Models",
        Some(nav),
        html! {
            h1 { "Models by stage" }
            p.muted { "Exactly the models your roles let you see (the same policy call as GET /v1/models)." }
            div.stages {
                @for stage in [Stage::Dev, Stage::Staging, Stage::Production] {
                    section.stage aria-labelledby=(format!("stage-{stage}")) {
                        h2 id=(format!("stage-{stage}")) { (stage) }
                        @let cards = columns.get(&stage).map(Vec::as_slice).unwrap_or_default();
                        @if cards.is_empty() { p.muted { "No model you may see." } }
                        @for card in cards {
                            (model_card(nav, card, stage, now))
                        }
                    }
                }
            }
        },
    )
}

fn model_card(nav: &Nav, card: &ModelCard, stage: Stage, now: Timestamp) -> Markup {
    let m = &card.model;
    html! {
        article.model {
            h3 { (m.name) }
            dl {
                dt { "Scope" } dd { (m.scope) }
                dt { "Owner" } dd { (m.owner.as_deref().unwrap_or("unknown")) }
            }
            @if !card.history.is_empty() {
                table {
                    caption { "Stage history" }
                    thead { tr { th scope="col" { "Move" } th scope="col" { "Requested by" } th scope="col" { "Decided" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for r in &card.history {
                            tr {
                                td { (r.from) " → " (r.to) }
                                td { (r.requested_by) }
                                td.when { (when(r.decided_at)) }
                                td title=(r.message) { (format!("{:?}", r.phase)) }
                            }
                        }
                    }
                }
            }
            @for to in &card.moves {
                (change(&yaml::stage_move(&m.name, &m.scope, stage, *to, nav.username, card.namespace.as_deref(), now)))
            }
        }
    }
}

/// Users an Admin manages, with the YAML for role changes, revocation and password resets.
pub fn users(nav: &Nav, lines: &[UserLine]) -> Markup {
    layout(
        "Users",
        Some(nav),
        html! {
            h1 { "Users" }
            p.muted { "Users with a role in a scope you administer; only those roles are shown." }
            table.users {
                thead { tr {
                    th scope="col" { "Username" } th scope="col" { "Display name" } th scope="col" { "State" }
                    th scope="col" { "Phase" } th scope="col" { "Roles" } th scope="col" { "Last login" }
                } }
                tbody {
                    @for l in lines {
                        tr {
                            td { (l.user.username) }
                            td { (l.user.display_name.as_deref().unwrap_or("")) }
                            td { (format!("{:?}", l.user.state)) }
                            td { (l.phase) }
                            td {
                                @if l.bindings.is_empty() { span.muted { "no role" } }
                                @for (i, b) in l.bindings.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (b.role) " at " (b.scope)
                                }
                            }
                            td { (when_opt(l.user.last_login, "never")) }
                        }
                    }
                }
            }
            h2 { "Changes to commit" }
            @for l in lines.iter().filter(|l| !l.user.bootstrap) {
                section.user-changes aria-labelledby=(format!("changes-{}", l.user.username)) {
                    h3 id=(format!("changes-{}", l.user.username)) { (l.user.username) }
                    @for b in &l.bindings { (change(&yaml::change_role(b))) }
                    (change(&yaml::reset_password(&l.user)))
                    (change(&yaml::revoke_user(&l.user)))
                }
            }
        },
    )
}

/// API tokens an Admin manages; those expiring within 14 days are highlighted.
pub fn tokens(nav: &Nav, lines: &[TokenLine]) -> Markup {
    layout(
        "API tokens",
        Some(nav),
        html! {
            h1 { "API tokens" }
            p.muted { "Highlighted: expiring within " (EXPIRY_HIGHLIGHT_DAYS) " days." }
            table.tokens {
                thead { tr {
                    th scope="col" { "Token" } th scope="col" { "Role" } th scope="col" { "Scope" } th scope="col" { "Owner" }
                    th scope="col" { "Key id" } th scope="col" { "Expires" } th scope="col" { "Phase" }
                } }
                tbody {
                    @for t in lines {
                        tr class=[t.expiring_soon.then_some("expiring")] {
                            td { (t.key.namespace) "/" (t.key.token_name) }
                            td { (t.key.role) }
                            td { (t.key.scope) }
                            td { (t.key.owner_user.as_deref().unwrap_or("")) }
                            td { code { (t.key.key_id) } }
                            td {
                                (when_opt(t.key.expires_at, "never"))
                                @if t.expiring_soon { " " strong.soon { "expires soon" } }
                            }
                            td { (t.phase) }
                        }
                    }
                }
            }
            h2 { "Changes to commit" }
            @for t in lines { (change(&yaml::rotate_token(&t.key))) }
        },
    )
}

/// Declared objects that are not Ready, with reason and source.
pub fn problems(nav: &Nav, failing: &[&ObjectStatus]) -> Markup {
    layout(
        "Not ready",
        Some(nav),
        html! {
            h1 { "Objects that are not Ready" }
            @if failing.is_empty() { p { "Every declared object you administer is Ready." } }
            @else {
                table.problems {
                    thead { tr { th scope="col" { "Object" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Source" } } }
                    tbody {
                        @for s in failing {
                            tr {
                                td { (s.key) }
                                td { (s.reason) }
                                td { (s.message) }
                                td { code { (s.source) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Audit filter values echoed into the form.
pub struct AuditQueryView<'a> {
    /// `user` filter.
    pub user: &'a str,
    /// `object` filter (KIND/NAMESPACE/NAME).
    pub object: &'a str,
    /// A filter error to show.
    pub error: Option<&'a str>,
}

/// The audit log, one page, filterable by user and object.
pub fn audit(nav: &Nav, page: &AuditPage, q: &AuditQueryView) -> Markup {
    let next = page.next_cursor.as_ref().map(|c| {
        let mut url = format!("/audit?cursor={c}");
        for (k, v) in [("user", q.user), ("object", q.object)] {
            if !v.is_empty() {
                url.push_str(&format!("&{k}={}", encode(v)));
            }
        }
        url
    });
    layout(
        "Audit log",
        Some(nav),
        html! {
            h1 { "Audit log" }
            form.filter method="get" action="/audit" {
                label for="audit-user" { "User" }
                input #audit-user type="text" name="user" value=(q.user);
                label for="audit-object" { "Object (KIND/NAMESPACE/NAME)" }
                input #audit-object type="text" name="object" value=(q.object) placeholder="User/ml-platform/ada";
                button type="submit" { "Filter" }
            }
            @if let Some(e) = q.error { p.error role="alert" { (e) } }
            table.audit {
                thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Object" } th scope="col" { "Source" } th scope="col" { "Change" } } }
                tbody {
                    @for e in &page.entries {
                        tr {
                            td { (e.id) }
                            td.when { (when(e.at)) }
                            td { (e.action) }
                            td { (e.object) }
                            td { code { (e.source) } }
                            td.change {
                                @if let Some(o) = &e.old { span.old { (o.to_string()) } }
                                @if e.old.is_some() && e.new.is_some() { " → " }
                                @if let Some(n) = &e.new { span.new { (n.to_string()) } }
                            }
                        }
                    }
                }
            }
            @if page.entries.is_empty() { p.muted { "No entry matches." } }
            @if let Some(url) = next { p { a href=(url) rel="next" { "Next page" } } }
        },
    )
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A message shown at the top of a page after a form was posted.
pub struct Notice<'a> {
    /// An error (shown as an alert) rather than a confirmation.
    pub error: bool,
    /// The text.
    pub text: &'a str,
}

/// What the account page shows: own roles, sessions (each with its end button) and the
/// password-change form.
pub struct AccountView<'a> {
    /// Roles held by this session (those at login).
    pub grants: &'a [Grant],
    /// The user's live sessions, oldest first, each with its public handle.
    pub sessions: &'a [(SessionRow, String)],
    /// Hash of the session viewing the page.
    pub current: &'a str,
    /// Display name, when declared.
    pub display_name: Option<&'a str>,
    /// The bootstrap administrator: its password comes from its Secret, no form.
    pub bootstrap: bool,
    /// The outcome of the form just posted, if any.
    pub notice: Option<Notice<'a>>,
}

/// The account page.
pub fn account(nav: &Nav, a: &AccountView) -> Markup {
    layout(
        "Account",
        Some(nav),
        html! {
            h1 { "Your account" }
            @if let Some(n) = &a.notice {
                @if n.error { p.error role="alert" { (n.text) } } @else { p.notice role="status" { (n.text) } }
            }
            dl {
                dt { "Username" } dd { (nav.username) }
                @if let Some(d) = a.display_name { dt { "Display name" } dd { (d) } }
                dt { "Roles" } dd { (grant_list(a.grants)) }
            }
            h2 { "Sessions" }
            table.sessions {
                thead { tr { th scope="col" { "Started" } th scope="col" { "Expires" } th scope="col" { "Session" } } }
                tbody {
                    @for (s, handle) in a.sessions {
                        tr {
                            td { (when(s.created_at)) }
                            td { (when(s.expires_at)) }
                            td {
                                @if s.id_hash.expose() == a.current { strong { "this session" } " " }
                                form.end-session method="post" action="/account/sessions/end" {
                                    input type="hidden" name="csrf" value=(nav.csrf);
                                    input type="hidden" name="session" value=(handle);
                                    button type="submit" aria-label=(format!("End this session (started {})", when(s.created_at))) { "End this session" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Password" }
            @if a.bootstrap {
                p { "The bootstrap administrator's password comes from its Secret: declare a User instead." }
            } @else {
                p.muted { "Changing it ends your other sessions; this one stays. A password reset declared in git later replaces it." }
                form.login.password method="post" action="/account/password" {
                    input type="hidden" name="csrf" value=(nav.csrf);
                    input type="text" name="username" autocomplete="username" value=(nav.username) aria-label="Username" hidden;
                    p {
                        label for="current-password" { "Current password" }
                        input #current-password type="password" name="current_password" autocomplete="current-password" required;
                    }
                    p {
                        label for="new-password" { "New password" }
                        input #new-password type="password" name="new_password" autocomplete="new-password" required;
                    }
                    p { button type="submit" { "Change password" } }
                }
            }
        },
    )
}

/// The invitation acceptance page (`GET /v1/invitations/accept`): the code rides in the URL
/// fragment, which `accept.js` (served by the process) posts with the chosen password.
pub fn invitation() -> Markup {
    layout_with(
        "Accept your invitation",
        None,
        html! { script src="/console/accept.js" defer {} },
        html! {
            h1 { "Accept your invitation" }
            p { "Choose the password you will log in with." }
            form.login #accept {
                p #code-field {
                    label for="code" { "Invitation code" }
                    input #code type="text" name="code" autocomplete="off" spellcheck="false" required;
                }
                p {
                    label for="password" { "Choose a password" }
                    input #password type="password" name="password" autocomplete="new-password" required;
                }
                p { button type="submit" { "Set password" } }
            }
            p #outcome role="status" {}
            p { a href="/login" { "Go to the login page" } }
        },
    )
}

/// The stylesheet: served from the process, so nothing is fetched from outside.
pub const STYLE: &str = include_str!("style.css");
