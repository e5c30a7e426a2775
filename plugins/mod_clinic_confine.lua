-- mod_clinic_confine: keep a hospital's users talking through the gateway (IV.2, II.1).
--
-- A local user's stanzas pass only to their own JID, their own server, the gateway's
-- domain and the configured upload service, plus the reads stock OMEMO clients need
-- from colleagues' accounts: disco and pubsub <items/> gets on another local user's
-- bare JID for the OMEMO device-list and bundle nodes (both versions) and the public
-- profile nodes (avatar, nickname). Everything else (messages of every type, presence
-- and subscriptions to other users, other IQs) bounces with not-allowed and a text
-- naming the gateway. Errors always pass, so replies to the gateway are never lost.
--
-- Load it globally (modules_enabled in prosody.cfg.lua); it acts on user hosts only.
-- The user host's disco#info carries the feature urn:xmpp-clinic:confine:0, so the
-- gateway can tell the module is loaded there (the compliance report, IV.2).
-- Options (global):
--   clinic_confine_gateway = "clinic.hospital.test"      -- required
--   clinic_confine_allowed = { "upload.hospital.test" }  -- further services, optional

local jid_split = require "util.jid".split;
local jid_bare = require "util.jid".bare;
local st = require "util.stanza";

if module:get_host_type() ~= "local" then
	return; -- components (the gateway itself, MUC, upload) are not confined
end

local gateway = module:get_option_string("clinic_confine_gateway");
if not gateway then
	module:log("error", "clinic_confine_gateway is not set: every user stanza to others bounces");
end
local allowed_hosts = module:get_option_set("clinic_confine_allowed", {});
if gateway then allowed_hosts:add(gateway); end
allowed_hosts:add(module.host);

-- Asked by the gateway at connect: "is confinement loaded on this user host?"
module:add_feature("urn:xmpp-clinic:confine:0");

local bounce_text = "Direct messages are disabled on this server: use a care thread at "
	.. (gateway or "the clinical gateway") .. " (IV.2)";

local xmlns_pubsub = "http://jabber.org/protocol/pubsub";
local xmlns_disco_info = "http://jabber.org/protocol/disco#info";
local xmlns_disco_items = "http://jabber.org/protocol/disco#items";

-- Nodes colleagues may read: OMEMO (legacy and 2) and the public profile.
local readable_nodes = {
	["eu.siacs.conversations.axolotl.devicelist"] = true;
	["urn:xmpp:omemo:2:devices"] = true;
	["urn:xmpp:omemo:2:bundles"] = true;
	["urn:xmpp:avatar:metadata"] = true;
	["urn:xmpp:avatar:data"] = true;
	["http://jabber.org/protocol/nick"] = true;
};
local readable_prefix = "eu.siacs.conversations.axolotl.bundles:";

local function readable(node)
	return node ~= nil and (readable_nodes[node] or node:sub(1, #readable_prefix) == readable_prefix);
end

-- An IQ get a colleague's account answers for OMEMO: disco, or pubsub <items/> of a
-- readable node, addressed to another local user's bare JID.
local function omemo_read(stanza, to_node, to_host, to_resource)
	if stanza.name ~= "iq" or stanza.attr.type ~= "get" then return false; end
	if to_node == nil or to_resource ~= nil or to_host ~= module.host then return false; end
	local payload = stanza.tags[1];
	if payload == nil or #stanza.tags ~= 1 then return false; end
	local xmlns = payload.attr.xmlns;
	if xmlns == xmlns_disco_info or xmlns == xmlns_disco_items then return true; end
	if xmlns ~= xmlns_pubsub or #payload.tags ~= 1 then return false; end
	local items = payload.tags[1];
	return items.name == "items" and readable(items.attr.node);
end

local function allowed(origin, stanza)
	if stanza.attr.type == "error" then return true; end
	local to = stanza.attr.to;
	if to == nil then return true; end -- to the account itself (roster, PEP, presence)
	local node, host, resource = jid_split(to);
	if host == nil then return false; end
	if node == nil and allowed_hosts:contains(host) then return true; end
	if gateway and (host == gateway) then return true; end -- thread@gateway
	if jid_bare(to) == origin.username .. "@" .. origin.host then return true; end
	return omemo_read(stanza, node, host, resource);
end

local function confine(event)
	local origin, stanza = event.origin, event.stanza;
	if origin == nil or origin.type ~= "c2s" then return; end -- servers and components pass
	if allowed(origin, stanza) then return; end
	module:log("debug", "bounced a %s from a local user to another account", stanza.name);
	if stanza.attr.type ~= "error" and stanza.attr.type ~= "result" then
		origin.send(st.error_reply(stanza, "cancel", "not-allowed", bounce_text));
	end
	return true;
end

-- Priority above the core handlers: decide before anything is routed.
for _, kind in ipairs({ "message", "presence", "iq" }) do
	for _, to in ipairs({ "bare", "full", "host" }) do
		module:hook("pre-" .. kind .. "/" .. to, confine, 1000);
	end
end
