import type { ConnectError } from "@connectrpc/connect";
import { endCallWithError } from "./call-error.ts";
import { LiveSet } from "./live-set.ts";
import type { NodeRequest as Request, NodeResponse as Response } from "./node-http.ts";

/** The calls in progress, so a shutdown can end the ones that outlive its drain deadline. */
export class InFlightCalls {
  private readonly calls = new LiveSet<{ req: Request; res: Response }>();

  track(req: Request, res: Response): void {
    res.once("close", this.calls.add({ req, res }));
  }

  get size(): number {
    return this.calls.size;
  }

  /**
   * Ends every call still in progress with `error`, in its protocol's form, so each client
   * learns its call failed (rather than seeing its stream end with nothing).
   */
  endAll(error: ConnectError): void {
    for (const { req, res } of this.calls.values()) endCallWithError(req, res, error);
  }
}
