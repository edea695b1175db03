//! The guard every spec route passes through: authenticate when the route's spec entry has a
//! `security` requirement, count the request against the API rate limit, check the ability the
//! route names, and report rate-limit headers on the way out.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::auth::principal::AuthFailure;
use crate::error::ApiError;
use crate::ratelimit::RateLimitReport;
use crate::routes::index::API_PREFIX;
use crate::state::AppState;

/// The client's address: the TCP peer. (Slipway does not trust `X-Forwarded-For`; put it
/// directly on the network or behind a proxy whose address you allow in token restrictions.)
pub fn client_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Marks a request the dashboard makes to the API in process, on behalf of a browser page.
/// The page itself was counted against the session's rate limit, so the reads it makes are not
/// counted again. Only code in this process can add a request extension; no client can.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(template) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let template = template.as_str();
    let Some(rule) = state.rules.get(request.method().as_str(), template).cloned() else {
        return next.run(request).await;
    };
    let report = RateLimitReport::default();
    request.extensions_mut().insert(report.clone());
    let ip = client_ip(&request);
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let in_process = request.extensions().get::<InProcess>().is_some();
    let limited = template.starts_with(API_PREFIX) && !in_process;
    let slot = request.extensions().get::<AuditSlot>().cloned();

    let outcome: Result<Option<Principal>, ApiError> = async {
        let principal = if rule.authenticated {
            // A dashboard session's token works only through the dashboard, where its idle expiry
            // and CSRF checks apply; presented to the API directly it is not a credential.
            let authenticated = Principal::authenticate(&state, header, ip)
                .await
                .and_then(|p| if p.dashboard_session && !in_process { Err(AuthFailure::Invalid) } else { Ok(p) });
            match authenticated {
                Ok(p) => {
                    // Known from here on, so even a refusal below is attributed in the audit log.
                    if let Some(slot) = &slot {
                        slot.note(|n| {
                            n.actor_user_id = p.user_id.clone();
                            n.token_id = Some(p.token_id.clone());
                            n.organization_id = n.organization_id.take().or_else(|| p.organization_id.clone());
                        });
                    }
                    Some(p)
                }
                Err(failure) => {
                    // Failed attempts count against the caller's address, so guessing is slow.
                    if limited {
                        let key = format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default());
                        let d = state.limiter.hit("api", &key, state.config.rate_limits.api_per_minute, 60).await?;
                        report.record(&d);
                        if !d.allowed {
                            return Err(d.into_error());
                        }
                    }
                    return Err(failure.into());
                }
            }
        } else {
            None
        };
        if limited {
            let by_address;
            let key = match &principal {
                Some(p) => p.subject_key.as_str(),
                None => {
                    by_address = format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default());
                    by_address.as_str()
                }
            };
            let d = state.limiter.hit("api", key, state.config.rate_limits.api_per_minute, 60).await?;
            report.record(&d);
            if !d.allowed {
                return Err(d.into_error());
            }
        }
        if let Some(p) = &principal {
            rule.check_token(&p.abilities)?;
        }
        Ok(principal)
    }
    .await;

    let mut response = match outcome {
        Ok(principal) => {
            if let Some(p) = principal {
                state.usage.record(&p.token_id, ip);
                request.extensions_mut().insert(p);
            }
            // The resource extractors check the same rule against the caller's role.
            request.extensions_mut().insert(rule);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    if let Some(decision) = report.take() {
        decision.write_headers(response.headers_mut());
    }
    response
}
