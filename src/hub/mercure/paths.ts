/** The Mercure front-end's URL paths. */

/** The hub's URL path. */
export const HUB_PATH = '/.well-known/mercure';

/** Where the subscriptions API and subscription events live. */
export const SUBSCRIPTIONS_PATH = `${HUB_PATH}/subscriptions`;
