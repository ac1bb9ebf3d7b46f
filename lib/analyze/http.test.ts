import assert from "node:assert/strict";
import { analyzeHttp } from "./http.js";

const k8s = (method: string, path: string) => analyzeHttp(method, path).kubernetes;

describe("analyzeHttp", () => {
  it("recognises cluster-scoped Kubernetes resources", () => {
    assert.deepEqual(k8s("DELETE", "/api/v1/nodes/n1"), { verb: "delete", resource: "nodes", group: "", name: "n1" });
    assert.deepEqual(k8s("GET", "/api/v1/nodes"), { verb: "list", resource: "nodes", group: "" });
    // like the API server, a namespace object is named and "in" itself
    assert.deepEqual(k8s("DELETE", "/api/v1/namespaces/prod"), {
      verb: "delete",
      resource: "namespaces",
      group: "",
      namespace: "prod",
      name: "prod",
    });
    assert.deepEqual(k8s("GET", "/api/v1/namespaces"), { verb: "list", resource: "namespaces", group: "" });
    assert.deepEqual(k8s("PUT", "/api/v1/namespaces/prod/finalize"), {
      verb: "update",
      resource: "namespaces/finalize",
      group: "",
      namespace: "prod",
      name: "prod",
    });
  });

  it("recognises namespaced resources and derives list/watch/deletecollection", () => {
    assert.deepEqual(k8s("GET", "/api/v1/namespaces/default/pods"), {
      verb: "list",
      resource: "pods",
      group: "",
      namespace: "default",
    });
    assert.equal(k8s("GET", "/api/v1/namespaces/default/pods?watch=true")?.verb, "watch");
    assert.equal(k8s("GET", "/api/v1/namespaces/default/pods?watch=1&limit=5")?.verb, "watch");
    assert.equal(k8s("GET", "/api/v1/namespaces/default/pods?watch=false")?.verb, "list");
    assert.equal(k8s("GET", "/api/v1/watch/namespaces/default/pods")?.verb, "watch");
    assert.equal(k8s("GET", "/api/v1/namespaces/default/pods/p1")?.verb, "get");
    assert.equal(k8s("HEAD", "/api/v1/namespaces/default/pods/p1")?.verb, "get");
    assert.equal(k8s("POST", "/api/v1/namespaces/default/pods")?.verb, "create");
    assert.equal(k8s("PUT", "/api/v1/namespaces/default/pods/p1")?.verb, "update");
    assert.equal(k8s("DELETE", "/api/v1/namespaces/default/pods")?.verb, "deletecollection");
    assert.equal(k8s("GET", "/api/v1/pods")?.namespace, undefined, "all namespaces");
    assert.deepEqual(k8s("GET", "/api/v1/namespaces/d/secrets?fieldSelector=metadata.name%3Dtoken"), {
      verb: "list",
      resource: "secrets",
      group: "",
      namespace: "d",
      name: "token",
    });
  });

  it("treats pod exec, attach and port-forward as create on the subresource", () => {
    for (const method of ["POST", "GET"]) {
      assert.deepEqual(k8s(method, "/api/v1/namespaces/d/pods/p/exec?command=sh&stdin=true"), {
        verb: "create",
        resource: "pods/exec",
        group: "",
        namespace: "d",
        name: "p",
      });
    }
    assert.equal(k8s("GET", "/api/v1/namespaces/d/pods/p/attach")?.resource, "pods/attach");
    assert.equal(k8s("POST", "/api/v1/namespaces/d/pods/p/portforward")?.verb, "create");
    assert.deepEqual(k8s("GET", "/api/v1/namespaces/d/pods/p/log"), {
      verb: "get",
      resource: "pods/log",
      group: "",
      namespace: "d",
      name: "p",
    });
    assert.deepEqual(k8s("GET", "/api/v1/namespaces/d/services/s:80/proxy/metrics"), {
      verb: "get",
      resource: "services/proxy",
      group: "",
      namespace: "d",
      name: "s:80",
    });
    assert.deepEqual(k8s("GET", "/api/v1/proxy/nodes/n1/stats"), {
      verb: "proxy",
      resource: "nodes",
      group: "",
      name: "n1",
    });
  });

  it("reads the API group of /apis paths", () => {
    assert.deepEqual(k8s("PATCH", "/apis/apps/v1/namespaces/d/deployments/x"), {
      verb: "patch",
      resource: "deployments",
      group: "apps",
      namespace: "d",
      name: "x",
    });
    assert.deepEqual(k8s("PUT", "/apis/apps/v1/namespaces/d/deployments/x/scale"), {
      verb: "update",
      resource: "deployments/scale",
      group: "apps",
      namespace: "d",
      name: "x",
    });
    assert.deepEqual(k8s("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"), {
      verb: "list",
      resource: "clusterroles",
      group: "rbac.authorization.k8s.io",
    });
  });

  it("gives discovery and non-Kubernetes paths no Kubernetes attributes", () => {
    for (const p of ["/api", "/api/v1", "/apis/apps/v1", "/apis", "/version", "/healthz"]) {
      assert.equal(k8s("GET", p), undefined, p);
    }
    const plain = analyzeHttp("get", "/v1/users?x=1");
    assert.deepEqual(plain, {
      protocol: "http",
      method: "GET",
      path: "/v1/users",
      query: "x=1",
      text: "GET /v1/users?x=1",
    });
  });

  it("normalizes paths before matching", () => {
    const c = analyzeHttp("GET", "/c/../api/v1/nodes");
    assert.equal(c.path, "/api/v1/nodes");
    assert.equal(c.kubernetes?.resource, "nodes");
    assert.equal(analyzeHttp("GET", "//api//v1/./nodes/").path, "/api/v1/nodes/");
    assert.equal(analyzeHttp("GET", "/../../etc/passwd").path, "/etc/passwd");
    assert.equal(analyzeHttp("GET", "/a/%2e%2e/api/v1/%6eodes").path, "/api/v1/nodes");
    assert.equal(analyzeHttp("GET", "/a/b/..").path, "/a/");
    assert.equal(analyzeHttp("GET", "").path, "/");
    assert.equal(analyzeHttp("GET", "/caf%C3%A9%20x").path, "/café x");
    const abs = analyzeHttp("GET", "https://k8s:6443/api/v1/nodes?watch=1");
    assert.equal(abs.path, "/api/v1/nodes");
    assert.equal(abs.kubernetes?.verb, "watch");
    assert.equal(abs.parseError, undefined);
  });

  it("keeps ambiguous encodings encoded and flags them", () => {
    const slash = analyzeHttp("GET", "/api/v1/namespaces%2Fprod%2Fsecrets");
    assert.equal(slash.path, "/api/v1/namespaces%2Fprod%2Fsecrets");
    assert.match(slash.parseError ?? "", /%2F/);
    assert.equal(slash.kubernetes?.resource, "namespaces%2Fprod%2Fsecrets");
    const pct = analyzeHttp("GET", "/a%25b");
    assert.equal(pct.path, "/a%25b");
    assert.equal(pct.parseError, undefined);
    assert.match(analyzeHttp("GET", "/a%zz").parseError ?? "", /percent-encoding/);
    assert.equal(analyzeHttp("GET", "/a%zz").path, "/a%25zz");
    assert.match(analyzeHttp("GET", "/a%00b").parseError ?? "", /control/);
    assert.match(analyzeHttp("GET", "/a%C0%AF").parseError ?? "", /UTF-8/);
    assert.equal(analyzeHttp("GET", "/a%C0%AF").path, "/a%C0%AF");
  });
});
