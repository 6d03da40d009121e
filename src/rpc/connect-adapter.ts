/**
 * connect-node's request handler for the calls the direct path leaves to it, built like
 * `connectNodeAdapter` (router → universal handlers by path → node request/response) with two
 * differences: each response passes through the gRPC corrections of grpc-compat.ts, and a
 * handler failure is logged with our logger instead of console.error.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
} from '@connectrpc/connect';
import type { UniversalHandler } from '@connectrpc/connect/protocol';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { Logger } from '../logger.js';
import { correctResponse } from './grpc-compat.js';

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export function connectHandler(
  routes: (router: ConnectRouter) => void,
  options: ConnectRouterOptions & { logger: Logger },
): NodeHandler {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  routes(router);
  const paths = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = paths.get(req.url?.split('?', 2)[0] ?? '');
    if (!handler) {
      (res as http.ServerResponse).writeHead(404).end();
      return;
    }
    handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then(correctResponse)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // Aborted: the client went away mid-response; nothing is left to tell it.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error('connect handler failed', {
          rpc: `${handler.service.typeName}/${handler.method.name}`,
          err: reason,
        });
      });
  };
}
