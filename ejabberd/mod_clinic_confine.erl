%%% mod_clinic_confine: keep a hospital's users talking through the gateway (IV.2, II.1).
%%%
%%% A local user's stanzas pass only to their own JID, their own server, the gateway's
%%% domain and the configured services (upload), plus the reads stock OMEMO clients need
%%% from colleagues' accounts: disco and pubsub <items/> gets on another local user's
%%% bare JID for the OMEMO device-list and bundle nodes (both versions) and the public
%%% profile nodes (avatar, nickname). Everything else (messages of every type, presence
%%% and subscriptions to other users, other IQs) bounces with not-allowed and a text
%%% naming the gateway. Errors always pass. The host's disco#info carries the feature
%%% urn:xmpp-clinic:confine:0, so the gateway can tell the module is loaded there.
%%%
%%% Build (ejabberd 23.01):  erlc -o EBIN -pa /usr/lib/x86_64-linux-gnu/ejabberd-23.01/ebin mod_clinic_confine.erl
%%% Load: `-pa EBIN` in ERL_OPTIONS (ejabberdctl.cfg), then in ejabberd.yml
%%%   modules:
%%%     mod_clinic_confine: {gateway: clinic.hospital.test, allowed: [upload.hospital.test]}
-module(mod_clinic_confine).
-behaviour(gen_mod).

-export([start/2, stop/1, reload/3, depends/2, mod_opt_type/1, mod_options/1,
         mod_doc/0, user_send_packet/1, disco_local_features/5]).

-define(CONFINE_FEATURE, <<"urn:xmpp-clinic:confine:0">>).
-define(PUBSUB, <<"http://jabber.org/protocol/pubsub">>).
-define(DISCO_INFO, <<"http://jabber.org/protocol/disco#info">>).
-define(DISCO_ITEMS, <<"http://jabber.org/protocol/disco#items">>).
-define(LEGACY_BUNDLES, <<"eu.siacs.conversations.axolotl.bundles:">>).
-define(READABLE, [<<"eu.siacs.conversations.axolotl.devicelist">>,
                   <<"urn:xmpp:omemo:2:devices">>, <<"urn:xmpp:omemo:2:bundles">>,
                   <<"urn:xmpp:avatar:metadata">>, <<"urn:xmpp:avatar:data">>,
                   <<"http://jabber.org/protocol/nick">>]).

start(Host, _Opts) ->
    ejabberd_hooks:add(user_send_packet, Host, ?MODULE, user_send_packet, 10),
    ejabberd_hooks:add(disco_local_features, Host, ?MODULE, disco_local_features, 50),
    ok.

stop(Host) ->
    ejabberd_hooks:delete(user_send_packet, Host, ?MODULE, user_send_packet, 10),
    ejabberd_hooks:delete(disco_local_features, Host, ?MODULE, disco_local_features, 50),
    ok.

reload(_Host, _NewOpts, _OldOpts) -> ok.

depends(_Host, _Opts) -> [].

mod_opt_type(gateway) -> econf:domain();
mod_opt_type(allowed) -> econf:list(econf:domain()).

mod_options(_Host) -> [{gateway, <<>>}, {allowed, []}].

mod_doc() -> #{desc => ["Bounce users' stanzas to anyone but themselves, their server, "
                        "the clinical gateway and the allowed services."]}.

user_send_packet({Pkt, #{jid := From, lserver := LServer} = State} = Acc) ->
    Gateway = gen_mod:get_module_opt(LServer, ?MODULE, gateway),
    Allowed = [Gateway, LServer | gen_mod:get_module_opt(LServer, ?MODULE, allowed)],
    case allowed(Pkt, From, LServer, Allowed) of
        true -> Acc;
        false ->
            bounce(Pkt, Gateway),
            {stop, {drop, State}}
    end;
user_send_packet(Acc) -> Acc.

%% The server's own disco#info (no node) says the module is loaded (IV.2).
disco_local_features({error, _} = Acc, _From, _To, _Node, _Lang) -> Acc;
disco_local_features(empty, _From, _To, <<>>, _Lang) -> {result, [?CONFINE_FEATURE]};
disco_local_features({result, Features}, _From, _To, <<>>, _Lang) ->
    {result, [?CONFINE_FEATURE | Features]};
disco_local_features(Acc, _From, _To, _Node, _Lang) -> Acc.

allowed(Pkt, From, LServer, Hosts) ->
    case {xmpp:get_type(Pkt), xmpp:get_to(Pkt)} of
        {error, _} -> true;
        {_, undefined} -> true;
        {_, To} ->
            {ToUser, ToServer, ToResource} = jid:tolower(To),
            {FromUser, FromServer, _} = jid:tolower(From),
            if
                ToUser == <<>> -> lists:member(ToServer, Hosts);
                {ToUser, ToServer} == {FromUser, FromServer} -> true;
                ToServer == hd(Hosts) -> true;  % a thread at the gateway
                ToServer == LServer, ToResource == <<>> -> omemo_read(Pkt);
                true -> false
            end
    end.

%% An IQ get a colleague's account answers for OMEMO: disco, or pubsub <items/> of a
%% readable node.
omemo_read(Pkt) ->
    case {element(1, Pkt), xmpp:get_type(Pkt), xmpp:get_els(Pkt)} of
        {iq, get, [El]} ->
            case xmpp:get_ns(El) of
                ?DISCO_INFO -> true;
                ?DISCO_ITEMS -> true;
                ?PUBSUB -> readable_items(El);
                _ -> false
            end;
        _ -> false
    end.

readable_items({xmlel, _, _, Children}) ->
    case [C || {xmlel, _, _, _} = C <- Children] of
        [{xmlel, <<"items">>, Attrs, _}] ->
            Node = proplists:get_value(<<"node">>, Attrs, <<>>),
            lists:member(Node, ?READABLE) orelse
                binary:longest_common_prefix([Node, ?LEGACY_BUNDLES]) == byte_size(?LEGACY_BUNDLES);
        _ -> false
    end;
readable_items(Decoded) ->
    readable_items(xmpp:encode(Decoded)).

bounce(Pkt, Gateway) ->
    case xmpp:get_type(Pkt) of
        result -> ok;
        _ ->
            Text = <<"Direct messages are disabled on this server: use a care thread at ",
                     Gateway/binary, " (IV.2)">>,
            ejabberd_router:route_error(Pkt, xmpp:err_not_allowed(Text, <<"en">>))
    end.
