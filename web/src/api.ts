import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { NotificationService } from "./gen/switchboard/notification/v1/notification_service_pb.js";
import { ConversationService } from "./gen/switchboard/conversation/v1/conversation_service_pb.js";

export interface Api {
  notifications: Client<typeof NotificationService>;
  conversations: Client<typeof ConversationService>;
}

/**
 * Clients for both services over gRPC-Web. The app is served by the gateway it calls, so
 * the base URL is the page's origin; a development server (`npm run dev`) points it at
 * another gateway with `VITE_GATEWAY_URL` (that gateway must allow the origin in
 * `--cors-allowed-origins`). `onUnauthenticated` hears of any call the gateway refused
 * for the token, so the page can ask to sign in again.
 */
export function createApi(token: string, onUnauthenticated: () => void): Api {
  const auth: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(request);
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) onUnauthenticated();
      throw err;
    }
  };
  const envUrl = import.meta.env.VITE_GATEWAY_URL as string | undefined;
  const transport = createGrpcWebTransport({
    baseUrl: envUrl && envUrl !== "" ? envUrl : window.location.origin,
    interceptors: [auth],
  });
  return {
    notifications: createClient(NotificationService, transport),
    conversations: createClient(ConversationService, transport),
  };
}

/** The text to show for a failed call: the server's message (for a field violation it is
 * "field: what is wrong"), not the code's name. */
export function errorText(err: unknown): string {
  const e = ConnectError.from(err);
  if (e.code === Code.Unavailable) return "The server cannot be reached; try again in a moment.";
  return e.rawMessage || e.message;
}

export function isCode(err: unknown, code: Code): boolean {
  return ConnectError.from(err).code === code;
}
