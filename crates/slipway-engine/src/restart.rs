//! `server.restart`: restart managed services, or reboot the server.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::Server;

use crate::script::Script;
use crate::session::{connect, load_server, run_script};
use crate::{Engine, JobKind};

/// Not retried: a restart or reboot half-done is reported, and the user asks again.
pub const SERVER_RESTART: JobKind = JobKind { name: "server.restart", attempts: 1 };

/// Services a restart can name.
pub const SERVICES: [&str; 5] = ["nginx", "php-fpm", "supervisor", "cron", "database"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartJob {
    pub server_id: String,
    /// Names from [`SERVICES`].
    pub services: Vec<String>,
    pub reboot: bool,
}

/// The system service behind a name from [`SERVICES`] on this server, or why there is none.
pub fn system_service(server: &Server, name: &str) -> Result<String, String> {
    Ok(match name {
        "nginx" | "supervisor" | "cron" => name.to_string(),
        "php-fpm" => match &server.php_version {
            Some(v) => format!("php{v}-fpm"),
            None => return Err("the server has no PHP".into()),
        },
        "database" => match server.database_type.as_str() {
            "mariadb" => "mariadb".into(),
            "mysql" => "mysql".into(),
            "postgres" => "postgresql".into(),
            _ => return Err("the server has no database".into()),
        },
        other => return Err(format!("unknown service {other:?}")),
    })
}

#[derive(Debug)]
pub struct RestartServer(pub Engine);

#[async_trait]
impl JobHandler for RestartServer {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: RestartJob = ctx.payload()?;
        let server = load_server(&self.0, &job.server_id).await?;
        let services = job
            .services
            .iter()
            .map(|name| system_service(&server, name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(JobError::failed)?;
        let script = Script::new("restart", include_str!("../scripts/restart.sh"))
            .var("SERVICES", &services.join(" "))
            .var("REBOOT", if job.reboot { "yes" } else { "no" });
        let connection = connect(&self.0, ctx, &server).await?;
        let result = run_script(&self.0, ctx, &connection, &script).await;
        if result.is_ok() && job.reboot {
            ctx.log("info", "reboot requested; the server is unreachable until it is back up");
        }
        result
    }
}
