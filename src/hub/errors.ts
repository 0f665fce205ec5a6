/** Every error class of the hub, for embedders: the core's refusals, the HTTP answer, bad settings. */
export { DrainingError, DuplicateIdError, HubError, InvalidSelectorError, InvalidSubscriptionError, InvalidTokenError, InvalidUpdateError, NotAllowedError, OverCapacityError, RateLimitedError, TransportUnavailableError } from './core/errors.js';
export { HttpError } from './mercure/errors.js';
export { ConfigError } from './config.js';

