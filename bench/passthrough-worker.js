/**
 * The runtime's floor: the least a Worker can do to proxy, fetch the same
 * path on the upstream and return its response as it is (body streamed).
 * Runs beside the edge in the same workerd, so the edge's ratio to it is what
 * our own code costs on top of the runtime.
 */
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.UPSTREAM_ORIGIN + url.pathname + url.search, { method: request.method, headers: request.headers });
  },
};
