"use server";
// Example Next.js server actions calling the gateway through openapi-fetch,
// typed by src/gateway.d.ts (generated from gateway/api/openapi.yaml by
// `make typescript`, which also type-checks this file under --strict). A
// breaking change to the document is a compile error here before it reaches
// the app.

import createClient from "openapi-fetch";
import type { components, paths } from "./gateway";

type Schemas = components["schemas"];
export type Incident = Schemas["Incident"];
export type IncidentCreate = Schemas["IncidentCreate"];
export type DocumentUpload = Schemas["DocumentUpload"];
export type Document = Schemas["Document"];
export type PCNJob = Schemas["PCNJob"];

/** Who is calling: the app reads both from its environment and the Supabase session. */
export interface Session {
  gatewayURL: string;
  accessToken: string;
}

/** Every failure the document declares, narrowed to what a page can act on. */
export type GatewayError =
  | { kind: "validation"; status: 422; issues: Schemas["ValidationIssue"][] }
  | { kind: "rate_limited"; status: 429; retryAfterSeconds: number; detail: string }
  | { kind: "unauthorized"; status: 401; detail: string }
  | { kind: "not_found"; status: 404; detail: string }
  | { kind: "failed"; status: number; detail: string };

export type Result<T> = { ok: true; data: T } | { ok: false; error: GatewayError };

type ErrorBody = Schemas["HTTPError"] | Schemas["HTTPValidationError"];

function gateway(s: Session) {
  return createClient<paths>({
    baseUrl: s.gatewayURL,
    headers: { Authorization: `Bearer ${s.accessToken}` },
  });
}

function toError(body: ErrorBody | undefined, res: Response): GatewayError {
  const detail = body?.detail;
  if (res.status === 422 && Array.isArray(detail)) {
    return { kind: "validation", status: 422, issues: detail };
  }
  const text = typeof detail === "string" ? detail : res.statusText;
  switch (res.status) {
    case 429:
      return { kind: "rate_limited", status: 429, retryAfterSeconds: Number(res.headers.get("Retry-After") ?? "1"), detail: text };
    case 401:
      return { kind: "unauthorized", status: 401, detail: text };
    case 404:
      return { kind: "not_found", status: 404, detail: text };
    default:
      return { kind: "failed", status: res.status, detail: text };
  }
}

/** One page of incidents and the total, for a paged table. */
export async function listIncidents(
  s: Session,
  page: { limit: number; offset: number; status?: Schemas["IncidentStatus"] },
): Promise<Result<{ items: Incident[]; total: number }>> {
  const query: NonNullable<paths["/incidents"]["get"]["parameters"]["query"]> = { limit: page.limit, offset: page.offset };
  if (page.status !== undefined) query.status = page.status;
  const { data, error, response } = await gateway(s).GET("/incidents", { params: { query } });
  if (data === undefined) return { ok: false, error: toError(error, response) };
  return { ok: true, data: { items: data, total: Number(response.headers.get("X-Total-Count")) } };
}

export async function createIncident(s: Session, body: IncidentCreate): Promise<Result<Incident>> {
  const { data, error, response } = await gateway(s).POST("/incidents", { body });
  if (data === undefined) return { ok: false, error: toError(error, response) };
  return { ok: true, data };
}

/** Step 1 of an upload: the document row and the signed URL the browser PUTs to. */
export async function requestUpload(
  s: Session,
  file: { name: string; type: Schemas["DocumentContentType"]; size: number },
  entity: { type: Schemas["EntityType"]; id: string; docType: Schemas["DocType"] },
): Promise<Result<DocumentUpload>> {
  const { data, error, response } = await gateway(s).POST("/documents/upload-url", {
    body: {
      entity_type: entity.type,
      entity_id: entity.id,
      doc_type: entity.docType,
      filename: file.name,
      content_type: file.type,
      size_bytes: file.size,
    },
  });
  if (data === undefined) return { ok: false, error: toError(error, response) };
  return { ok: true, data };
}

/** Step 2, in the browser: PUT the file with exactly the headers the gateway gave. */
export async function putFile(upload: DocumentUpload, file: Blob): Promise<boolean> {
  const res = await fetch(upload.upload_url, { method: upload.upload_method, headers: upload.upload_headers, body: file });
  return res.ok;
}

/** Step 3: the gateway checks the object and marks the document uploaded. */
export async function completeUpload(s: Session, documentID: string): Promise<Result<Document>> {
  const { data, error, response } = await gateway(s).POST("/documents/{id}/complete", {
    params: { path: { id: documentID } },
  });
  if (data === undefined) return { ok: false, error: toError(error, response) };
  return { ok: true, data };
}

/** What a page shows for a finished scan. */
export type ScanOutcome =
  | { state: "done"; violationID: string }
  | { state: "needs_attention"; reason: NonNullable<PCNJob["reason"]> | "unknown"; jobID: string };

/** Queue a PCN scan of an uploaded document and poll until it settles. */
export async function scanAndWait(s: Session, documentID: string, pollMs = 2000, maxPolls = 60): Promise<Result<ScanOutcome>> {
  const client = gateway(s);
  const queued = await client.POST("/violations/scan", { body: { document_id: documentID } });
  if (queued.data === undefined) return { ok: false, error: toError(queued.error, queued.response) };
  let job: PCNJob = queued.data;
  for (let i = 0; i < maxPolls; i++) {
    switch (job.status) {
      case "done":
        if (job.violation_id === null) return { ok: false, error: { kind: "failed", status: 200, detail: "done without a violation" } };
        return { ok: true, data: { state: "done", violationID: job.violation_id } };
      case "needs_attention":
        return { ok: true, data: { state: "needs_attention", reason: job.reason ?? "unknown", jobID: job.id } };
      case "queued":
      case "processing":
        break;
      default: {
        const unknown: never = job.status; // a new status in the document fails to compile here
        return { ok: false, error: { kind: "failed", status: 200, detail: `unknown status ${String(unknown)}` } };
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
    const polled = await client.GET("/violations/scan/{job_id}", { params: { path: { job_id: job.id } } });
    if (polled.data === undefined) return { ok: false, error: toError(polled.error, polled.response) };
    job = polled.data;
  }
  return { ok: false, error: { kind: "failed", status: 202, detail: "scan still running" } };
}

/** A message for a job that needs attention; every reason code must be handled. */
export function describeReason(reason: NonNullable<PCNJob["reason"]>): string {
  if (reason.startsWith("retrying: ")) return "Retrying after a temporary failure";
  switch (reason) {
    case "not_a_pcn":
      return "This document does not look like a penalty charge notice";
    case "pcn_number_unreadable":
      return "The PCN number could not be read";
    case "enqueue_failed":
      return "The scan could not be queued; retry it";
    default:
      return `Needs attention (${reason})`;
  }
}
