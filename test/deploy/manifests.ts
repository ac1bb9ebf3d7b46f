// Rendered Helm output: parse every document, validate it against the Kubernetes API schema
// (kubernetes-models), and look objects up with their types.
import { apps, networkingK8sIo, policy, v1 } from "kubernetes-models";
import { parseAllDocuments } from "yaml";
import { isRecord } from "./compose.js";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** Every kind the chart may render; anything else fails the test until it is added (and so validated). */
const MODELS: Record<string, ModelClass> = {
  "v1/ConfigMap": v1.ConfigMap,
  "v1/Secret": v1.Secret,
  "v1/Service": v1.Service,
  "v1/ServiceAccount": v1.ServiceAccount,
  "v1/PersistentVolumeClaim": v1.PersistentVolumeClaim,
  "apps/v1/Deployment": apps.v1.Deployment,
  "apps/v1/StatefulSet": apps.v1.StatefulSet,
  "networking.k8s.io/v1/Ingress": networkingK8sIo.v1.Ingress,
  "networking.k8s.io/v1/NetworkPolicy": networkingK8sIo.v1.NetworkPolicy,
  "policy/v1/PodDisruptionBudget": policy.v1.PodDisruptionBudget,
};

export interface Manifest {
  apiVersion: string;
  kind: string;
  name: string;
  raw: Record<string, unknown>;
}

/** Parse `helm template` output; throws on YAML errors, objects without kind/name, or duplicates. */
export function parseManifests(text: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML: ${doc.errors[0]?.message}`);
    const raw: unknown = doc.toJS();
    if (raw === null || raw === undefined) continue;
    if (!isRecord(raw) || typeof raw.apiVersion !== "string" || typeof raw.kind !== "string") {
      throw new Error(`rendered a document without apiVersion/kind: ${JSON.stringify(raw).slice(0, 200)}`);
    }
    const metadata = isRecord(raw.metadata) ? raw.metadata : {};
    if (typeof metadata.name !== "string") throw new Error(`${raw.kind} without metadata.name`);
    const manifest = { apiVersion: raw.apiVersion, kind: raw.kind, name: metadata.name, raw };
    if (out.some((m) => m.kind === manifest.kind && m.name === manifest.name)) {
      throw new Error(`rendered ${manifest.kind}/${manifest.name} twice`);
    }
    out.push(manifest);
  }
  return out;
}

/** Validate every manifest against its Kubernetes schema; the error names the object. */
export function validateManifests(manifests: Manifest[]): void {
  for (const m of manifests) {
    const Model = MODELS[`${m.apiVersion}/${m.kind}`];
    if (!Model) throw new Error(`no schema for ${m.apiVersion} ${m.kind} (${m.name}): add it to MODELS`);
    try {
      new Model(m.raw as never).validate();
    } catch (err) {
      throw new Error(`${m.kind}/${m.name} is not valid: ${err instanceof Error ? err.message : String(err)}`);
    }
    // The API server requires DNS-1123 names for all of these kinds.
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(m.name))
      throw new Error(`${m.kind} name "${m.name}" is not DNS-1123`);
  }
}

/** Typed lookups over a rendered release. */
export class Release {
  constructor(readonly manifests: Manifest[]) {}

  kinds(kind: string): Manifest[] {
    return this.manifests.filter((m) => m.kind === kind);
  }

  names(kind: string): string[] {
    return this.kinds(kind).map((m) => m.name);
  }

  private one(kind: string, name: string): Record<string, unknown> {
    const found = this.manifests.find((m) => m.kind === kind && m.name === name);
    if (!found)
      throw new Error(`no ${kind}/${name}; rendered: ${this.manifests.map((m) => `${m.kind}/${m.name}`).join(", ")}`);
    return found.raw;
  }

  deployment(name: string): apps.v1.Deployment {
    return new apps.v1.Deployment(this.one("Deployment", name) as unknown as apps.v1.IDeployment);
  }

  statefulSet(name: string): apps.v1.StatefulSet {
    return new apps.v1.StatefulSet(this.one("StatefulSet", name) as unknown as apps.v1.IStatefulSet);
  }

  service(name: string): v1.Service {
    return new v1.Service(this.one("Service", name) as unknown as v1.IService);
  }

  configMap(name: string): v1.ConfigMap {
    return new v1.ConfigMap(this.one("ConfigMap", name) as unknown as v1.IConfigMap);
  }

  secret(name: string): v1.Secret {
    return new v1.Secret(this.one("Secret", name) as unknown as v1.ISecret);
  }

  networkPolicy(name: string): networkingK8sIo.v1.NetworkPolicy {
    return new networkingK8sIo.v1.NetworkPolicy(
      this.one("NetworkPolicy", name) as unknown as networkingK8sIo.v1.INetworkPolicy,
    );
  }

  ingress(name: string): networkingK8sIo.v1.Ingress {
    return new networkingK8sIo.v1.Ingress(this.one("Ingress", name) as unknown as networkingK8sIo.v1.IIngress);
  }

  /** Every object's labels, selectors included, that select `component` pods. */
  selecting(component: string): Manifest[] {
    return this.manifests.filter((m) => {
      const spec = isRecord(m.raw.spec) ? m.raw.spec : {};
      const selector = isRecord(spec.selector) ? spec.selector : {};
      const labels = isRecord(selector.matchLabels) ? selector.matchLabels : selector;
      return labels["app.kubernetes.io/component"] === component;
    });
  }
}
