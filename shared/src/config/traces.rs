//! The tracing section: [`TraceConfig`], OpenTelemetry's own `OTEL_*`
//! variables (the names every OpenTelemetry SDK reads, with their standard
//! defaults), and the code that reads them. `crate::traces` exports what
//! they describe.
//!
//! They are read here rather than left to the SDK so that a typo is a
//! problem `check-config` names at start: the SDK falls back silently
//! (an unknown sampler becomes "always on", a bad ratio 1.0).

use std::time::Duration;

use super::reader::{Reader, Var};
use crate::secret::Secret;

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`, the OTLP default.
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

/// How export bodies are compressed (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    /// Sent as is.
    None,
    /// gzip (`Content-Encoding: gzip`); a tenth of the bytes for typical spans.
    Gzip,
}

/// Which spans are kept (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// This share of traces (0.0–1.0), by trace id.
    Ratio(f64),
    /// Follow the caller's decision (the `traceparent` flag); for a new
    /// trace, the inner choice.
    ParentBased(ParentlessChoice),
}

/// A parent-based sampler's choice for a trace that starts here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessChoice {
    /// Keep.
    AlwaysOn,
    /// Drop.
    AlwaysOff,
    /// This share, by trace id.
    Ratio(f64),
}

/// Where and how traces go; `endpoint: None` means tracing is off.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The full URL spans are POSTed to (`.../v1/traces`); `None`: off.
    pub endpoint: Option<String>,
    /// Wire format.
    pub protocol: OtlpProtocol,
    /// Body compression.
    pub compression: OtlpCompression,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`): often a token.
    pub headers: Vec<(String, Secret)>,
    /// How long one export may take.
    pub timeout: Duration,
    /// `service.name`; `None`: `hangar-<component>`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, parsed.
    pub resource: Vec<(String, String)>,
    /// Which traces are kept.
    pub sampler: SamplerChoice,
    /// Spans waiting for export, at most; past it new ones are dropped and
    /// counted (`hangar_trace_spans_dropped_total{reason="queue_full"}`).
    pub max_queue: usize,
    /// Spans per export request, at most.
    pub max_batch: usize,
    /// Longest a span waits before its batch is sent.
    pub delay: Duration,
}

/// The tracing variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: Some(""),
        doc: "send traces (OTLP over HTTP) to this collector, e.g. http://127.0.0.1:4318 (spans go to <endpoint>/v1/traces); empty: tracing off",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default: Some(""),
        doc: "the full URL for spans, used as is (overrides OTEL_EXPORTER_OTLP_ENDPOINT)",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        default: Some("http/protobuf"),
        doc: "http/protobuf or http/json (gRPC is not built in: point it at the collector's HTTP port, 4318)",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_HEADERS",
        default: Some(""),
        doc: "extra headers on every export, key=value,key2=value2 (values URL-encoded), e.g. an ingest token",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TIMEOUT",
        default: Some("10000"),
        doc: "milliseconds one export may take",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_COMPRESSION",
        default: Some("none"),
        doc: "gzip or none: compression of each export's body",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        default: Some(""),
        doc: "the traces-only forms of the four variables above, read as OpenTelemetry SDKs do: when set, each overrides its general form",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        default: Some(""),
        doc: "(see OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        default: Some(""),
        doc: "(see OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)",
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        default: Some(""),
        doc: "(see OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)",
    },
    Var {
        name: "OTEL_SERVICE_NAME",
        default: Some(""),
        doc: "service.name of every span; empty: hangar-api, hangar-worker or hangar-scheduler",
    },
    Var {
        name: "OTEL_RESOURCE_ATTRIBUTES",
        default: Some(""),
        doc: "more resource attributes, key=value,key2=value2, e.g. deployment.environment.name=production",
    },
    Var {
        name: "OTEL_TRACES_SAMPLER",
        default: Some("parentbased_always_on"),
        doc: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
    },
    Var {
        name: "OTEL_TRACES_SAMPLER_ARG",
        default: Some("1.0"),
        doc: "the ratio (0.0-1.0) of the traceidratio samplers",
    },
    Var {
        name: "OTEL_TRACES_EXPORTER",
        default: Some("otlp"),
        doc: "otlp, or none to turn tracing off while keeping the endpoint set",
    },
    Var {
        name: "OTEL_SDK_DISABLED",
        default: Some("false"),
        doc: "true turns tracing off",
    },
    Var {
        name: "OTEL_BSP_MAX_QUEUE_SIZE",
        default: Some("2048"),
        doc: "spans waiting for export, at most; past it new spans are dropped and counted, never waited for",
    },
    Var {
        name: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        default: Some("512"),
        doc: "spans per export request, at most",
    },
    Var {
        name: "OTEL_BSP_SCHEDULE_DELAY",
        default: Some("5000"),
        doc: "milliseconds a span may wait before its batch is sent",
    },
];

/// `key=value,key2=value2` with URL-encoded values (the OTel list format).
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{:?} is not key=value", item.trim()))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("{:?} has an empty key", item.trim()));
            }
            // Percent-decoding only: a `+` stays a `+` (base64 tokens).
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8_lossy()
                .into_owned();
            Ok((key.to_owned(), value))
        })
        .collect()
}

/// Header pairs that HTTP accepts; the SDK would drop the others silently
/// (and a collector would then refuse every export for want of its token).
fn http_headers(pairs: Vec<(String, String)>) -> Result<Vec<(String, Secret)>, String> {
    pairs
        .into_iter()
        .map(|(key, value)| {
            if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                return Err(format!("{key:?} is not an HTTP header name"));
            }
            if http::HeaderValue::from_str(&value).is_err() {
                return Err(format!("the value of {key:?} cannot be sent in an HTTP header"));
            }
            Ok((key, Secret::new(value)))
        })
        .collect()
}

impl Reader<'_> {
    /// Reads the tracing section.
    pub(super) fn traces(&mut self) -> TraceConfig {
        let traces_endpoint = self.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").unwrap_or_default();
        let base = self.raw("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
        let (name, url) = if traces_endpoint.is_empty() {
            let url = (!base.is_empty()).then(|| format!("{}/v1/traces", base.trim_end_matches('/')));
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        } else {
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Some(traces_endpoint))
        };
        let mut endpoint = url.filter(|u| match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => true,
            _ => {
                self.problem(name, format!("{u:?} is not an http:// or https:// URL"));
                false
            }
        });
        let protocol_var = self.signal_var(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        );
        let protocol = match self.raw(protocol_var).as_deref() {
            Some("http/json") => OtlpProtocol::HttpJson,
            Some("http/protobuf") | None => OtlpProtocol::HttpProtobuf,
            Some("grpc") => {
                self.problem(
                    protocol_var,
                    "grpc is not built into Hangar: use http/protobuf and the collector's HTTP port (4318)"
                        .into(),
                );
                OtlpProtocol::HttpProtobuf
            }
            Some(other) => {
                self.problem(
                    protocol_var,
                    format!("{other:?} is not http/protobuf or http/json"),
                );
                OtlpProtocol::HttpProtobuf
            }
        };
        let compression_var = self.signal_var(
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        );
        let compression = match self.raw(compression_var).unwrap_or_default().as_str() {
            "none" | "" => OtlpCompression::None,
            "gzip" => OtlpCompression::Gzip,
            other => {
                self.problem(compression_var, format!("{other:?} is not gzip or none"));
                OtlpCompression::None
            }
        };
        let headers_var = self.signal_var("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS");
        let headers = match key_values(&self.raw(headers_var).unwrap_or_default()).and_then(http_headers) {
            Ok(h) => h,
            Err(e) => {
                self.problem(headers_var, e);
                Vec::new()
            }
        };
        let timeout_var = self.signal_var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT");
        let resource = match key_values(&self.raw("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => {
                self.problem("OTEL_RESOURCE_ATTRIBUTES", e);
                Vec::new()
            }
        };
        let sampler = self.sampler();
        let exporter = self.raw("OTEL_TRACES_EXPORTER").unwrap_or_default();
        match exporter.as_str() {
            "otlp" => {}
            "none" => endpoint = None,
            other => self.problem("OTEL_TRACES_EXPORTER", format!("{other:?} is not otlp or none")),
        }
        if self.boolean("OTEL_SDK_DISABLED") {
            endpoint = None;
        }
        let max_queue = self.number("OTEL_BSP_MAX_QUEUE_SIZE", 1, 1_000_000);
        let max_batch = self.number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 100_000);
        if max_batch > max_queue {
            self.problem(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                format!("{max_batch} is more than OTEL_BSP_MAX_QUEUE_SIZE ({max_queue})"),
            );
        }
        TraceConfig {
            endpoint,
            protocol,
            compression,
            headers,
            timeout: self.millis(timeout_var, 1, 600_000),
            service_name: self.optional("OTEL_SERVICE_NAME"),
            resource,
            sampler,
            max_queue,
            max_batch,
            delay: self.millis("OTEL_BSP_SCHEDULE_DELAY", 1, 600_000),
        }
    }

    /// `specific` when it is set, else `general`: the OpenTelemetry rule
    /// for the traces-only forms of the exporter's variables (the SDK reads
    /// them too, so they are checked here like the general ones).
    fn signal_var(&mut self, specific: &'static str, general: &'static str) -> &'static str {
        if self.raw(specific).unwrap_or_default().is_empty() {
            general
        } else {
            specific
        }
    }

    fn sampler(&mut self) -> SamplerChoice {
        let name = self.raw("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let arg_text = self.raw("OTEL_TRACES_SAMPLER_ARG").unwrap_or_default();
        let mut ratio = || match arg_text.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                self.problem(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!("{arg_text:?} is not a ratio between 0.0 and 1.0"),
                );
                1.0
            }
        };
        match name.as_str() {
            "always_on" => SamplerChoice::AlwaysOn,
            "always_off" => SamplerChoice::AlwaysOff,
            "traceidratio" => SamplerChoice::Ratio(ratio()),
            "parentbased_always_on" => SamplerChoice::ParentBased(ParentlessChoice::AlwaysOn),
            "parentbased_always_off" => SamplerChoice::ParentBased(ParentlessChoice::AlwaysOff),
            "parentbased_traceidratio" => SamplerChoice::ParentBased(ParentlessChoice::Ratio(ratio())),
            other => {
                self.problem(
                    "OTEL_TRACES_SAMPLER",
                    format!(
                        "{other:?} is not always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                    ),
                );
                SamplerChoice::ParentBased(ParentlessChoice::AlwaysOn)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load;
    use super::*;

    const DB: (&str, &str) = ("HANGAR_DATABASE_URL", "postgres://localhost/hangar");

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_given_and_then_uses_the_standard_defaults() {
        let off = load(&[DB]).unwrap().traces;
        assert_eq!(off.endpoint, None);
        let on = load(&[DB, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .unwrap()
            .traces;
        assert_eq!(on.endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(on.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(on.sampler, SamplerChoice::ParentBased(ParentlessChoice::AlwaysOn));
        assert_eq!((on.max_queue, on.max_batch), (2048, 512));
        assert_eq!(on.timeout, Duration::from_secs(10));
        let own = load(&[
            DB,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://ingest.example/otlp/spans",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-token=a%3Db"),
        ])
        .unwrap()
        .traces;
        assert_eq!(own.endpoint.as_deref(), Some("https://ingest.example/otlp/spans"));
        assert_eq!(own.protocol, OtlpProtocol::HttpJson);
        assert_eq!(
            own.sampler,
            SamplerChoice::ParentBased(ParentlessChoice::Ratio(0.25))
        );
        assert_eq!(
            own.resource,
            vec![("deployment.environment.name".into(), "prod".into())]
        );
        assert_eq!(own.headers[0].1.expose(), "a=b");
        for off in [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")] {
            let c = load(&[DB, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), off]).unwrap();
            assert_eq!(c.traces.endpoint, None, "{off:?}");
        }
    }

    #[test]
    fn what_the_sdk_would_silently_replace_is_a_problem_naming_its_variable() {
        let err = load(&[
            DB,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "token"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4318/v1/traces\" is not an http:// or https:// URL",
            "OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not built into Hangar",
            "OTEL_EXPORTER_OTLP_HEADERS: \"token\" is not key=value",
            "OTEL_TRACES_SAMPLER_ARG: \"2\" is not a ratio between 0.0 and 1.0",
            "OTEL_TRACES_EXPORTER: \"jaeger\" is not otlp or none",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: \"zstd\" is not gzip or none",
        ] {
            assert!(text.contains(expected), "{expected}\nin:\n{text}");
        }
    }

    #[test]
    fn the_traces_only_forms_override_the_general_ones_and_are_checked_alike() {
        let c = load(&[
            DB,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
        ])
        .unwrap()
        .traces;
        assert_eq!(c.protocol, OtlpProtocol::HttpJson);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.compression, OtlpCompression::Gzip);
        assert_eq!(c.headers.len(), 1);
        assert_eq!((c.headers[0].0.as_str(), c.headers[0].1.expose()), ("b", "2"));
        let err = load(&[
            DB,
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad header=1"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-token=line%0Abreak"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_TRACES_HEADERS: \"bad header\" is not an HTTP header name"),
            "{err}"
        );
        let err = load(&[DB, ("OTEL_EXPORTER_OTLP_HEADERS", "x-token=line%0Abreak")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "OTEL_EXPORTER_OTLP_HEADERS: the value of \"x-token\" cannot be sent in an HTTP header"
            ),
            "{err}"
        );
    }

    #[test]
    fn key_values_are_split_trimmed_and_url_decoded() {
        assert_eq!(
            key_values("a=1, b = x%2Cy ,,c=,t=ab+c/=").unwrap(),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x,y".to_owned()),
                ("c".to_owned(), String::new()),
                ("t".to_owned(), "ab+c/=".to_owned())
            ]
        );
        assert!(key_values("novalue").unwrap_err().contains("not key=value"));
        assert!(key_values("=x").unwrap_err().contains("empty key"));
    }
}
