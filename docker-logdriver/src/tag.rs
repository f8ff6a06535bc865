//! What dockerd tells the driver about a container (`Info`), and the
//! source its records get: the container's name (LinuxKit's convention for
//! services: stderr under the name, stdout under `NAME.out`), or the `tag`
//! log-opt with Docker's templates.

use memlog::json::{self, Value};

/// The parts of dockerd's `logger.Info` the driver uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image_name: String,
    pub image_id: String,
    pub daemon_name: String,
    pub entrypoint: String,
    /// The log-opts (`Info.Config`).
    pub config: Vec<(String, String)>,
}

/// Log-opts this driver takes. `mode` and `max-buffer-size` are dockerd's
/// own (non-blocking delivery) and pass through; `tag` names the source.
const KNOWN_OPTS: [&str; 3] = ["tag", "mode", "max-buffer-size"];

impl Info {
    /// Reads an `Info` object (the bytes of its JSON value).
    pub fn parse(raw: &[u8]) -> Result<Info, String> {
        let fields = json::parse_object_spans(raw).map_err(|e| format!("Info: {e}"))?;
        let mut info = Info::default();
        for (k, v, raw) in &fields {
            let s = || v.as_str().unwrap_or_default().to_owned();
            match k.as_ref() {
                "ContainerID" => info.id = s(),
                "ContainerName" => info.name = s().trim_start_matches('/').to_owned(),
                "ContainerImageName" => info.image_name = s(),
                "ContainerImageID" => info.image_id = s(),
                "DaemonName" => info.daemon_name = s(),
                "ContainerEntrypoint" => info.entrypoint = s(),
                "Config" if *v == Value::Other => {
                    let cfg = json::parse_object(raw).map_err(|e| format!("Info.Config: {e}"))?;
                    for (k, v) in cfg {
                        let Some(v) = v.as_str() else {
                            return Err(format!("log-opt {k:?} is not a string"));
                        };
                        info.config.push((k.into_owned(), v.to_owned()));
                    }
                }
                _ => {}
            }
        }
        if info.id.is_empty() {
            return Err("Info has no ContainerID".into());
        }
        Ok(info)
    }

    fn opt(&self, k: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The source for stderr (stdout's is this and `.out`).
    pub fn source(&self) -> Result<String, String> {
        if let Some((k, _)) = self
            .config
            .iter()
            .find(|(k, _)| !KNOWN_OPTS.contains(&k.as_str()))
        {
            return Err(format!(
                "unknown log-opt {k:?} for the memlogd log driver (it takes: tag)"
            ));
        }
        let s = match self.opt("tag") {
            Some(t) if !t.is_empty() => self.expand(t)?,
            _ => self.name.clone(),
        };
        if s.is_empty() {
            // A container always has a name; a tag may expand to nothing.
            return Ok(self.short_id().to_owned());
        }
        Ok(s)
    }

    fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// Expands Docker's tag templates: `{{.Name}}`, `{{.ID}}` (12
    /// characters), `{{.FullID}}`, `{{.ImageName}}`, `{{.ImageID}}` (12),
    /// `{{.ImageFullID}}`, `{{.DaemonName}}`, `{{.Command}}`; text between
    /// them is kept. Anything else in `{{ }}` is refused (Docker's full Go
    /// template language is not implemented).
    pub fn expand(&self, t: &str) -> Result<String, String> {
        let image_id = self.image_id.trim_start_matches("sha256:");
        let mut out = String::new();
        let mut rest = t;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find("}}") else {
                return Err(format!("unclosed {{{{ in tag {t:?}"));
            };
            let field = rest[i + 2..i + j].trim();
            let v = match field {
                ".Name" => self.name.as_str(),
                ".ID" => self.short_id(),
                ".FullID" => self.id.as_str(),
                ".ImageName" => self.image_name.as_str(),
                ".ImageID" => &image_id[..image_id.len().min(12)],
                ".ImageFullID" => self.image_id.as_str(),
                ".DaemonName" => self.daemon_name.as_str(),
                ".Command" => self.entrypoint.as_str(),
                _ => {
                    return Err(format!(
                        "tag {t:?}: {{{{{field}}}}} is not supported (use {{{{.Name}}}}, {{{{.ID}}}}, {{{{.FullID}}}}, {{{{.ImageName}}}}, {{{{.ImageID}}}}, {{{{.ImageFullID}}}}, {{{{.DaemonName}}}}, {{{{.Command}}}})"
                    ))
                }
            };
            out.push_str(v);
            rest = &rest[i + j + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Info {
        Info::parse(br#"{"Config":{"tag":"{{.ImageName}}/{{ .Name }}/{{.ID}}"},"ContainerID":"0123456789abcdef0123","ContainerName":"/web","ContainerEntrypoint":"sh","ContainerArgs":["-c","x"],"ContainerImageID":"sha256:fedcba9876543210","ContainerImageName":"bb:1","ContainerCreated":"2026-12-02T06:27:09.1Z","ContainerEnv":["A=1"],"ContainerLabels":{"l":"v"},"LogPath":"","DaemonName":"docker"}"#).expect("parses")
    }

    #[test]
    fn info_and_templates() {
        let i = info();
        assert_eq!(i.name, "web");
        assert_eq!(i.source().expect("tag"), "bb:1/web/0123456789ab");
        assert_eq!(
            i.expand("{{.FullID}} {{.ImageID}} {{.ImageFullID}} {{.DaemonName}} {{.Command}}"),
            Ok("0123456789abcdef0123 fedcba987654 sha256:fedcba9876543210 docker sh".into())
        );
        let mut plain = i.clone();
        plain.config.clear();
        assert_eq!(plain.source(), Ok("web".into()));
        plain.config.push(("tag".into(), "".into()));
        assert_eq!(plain.source(), Ok("web".into()));
        plain.config[0].1 = "{{.Name".into();
        assert!(plain.source().is_err());
        plain.config[0].1 = "{{.Labels}}".into();
        assert!(plain.source().unwrap_err().contains("not supported"));
        plain.config[0].1 = "x".into();
        plain.config.push(("mode".into(), "non-blocking".into()));
        assert_eq!(plain.source(), Ok("x".into()));
        plain.config.push(("syslog-address".into(), "x".into()));
        assert!(plain.source().unwrap_err().contains("syslog-address"));
    }

    #[test]
    fn bad_info() {
        assert!(Info::parse(b"{}").is_err());
        assert!(Info::parse(b"[").is_err());
        assert!(Info::parse(br#"{"ContainerID":"a","Config":{"tag":1}}"#).is_err());
        // A null Config (dockerd sends one when there are no log-opts) is none.
        assert_eq!(
            Info::parse(br#"{"ContainerID":"a","Config":null}"#).map(|i| i.config.len()),
            Ok(0)
        );
    }
}
