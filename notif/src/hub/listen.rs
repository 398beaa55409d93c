//! Listening and unlistening: a tab on a key, checked against its identity and the topic's
//! `authorize`, here or on the node holding the tab; every tab of an identity at once.
use http::request::Parts;

use super::{key_id::KeyId, Hub};
use crate::{
    request::{caller_from, node_from},
    Identity, ListenError, TabId, Topic,
};

impl<I: Identity> Hub<I> {
    /// Listens `tab_id` on `key`, if `identity` owns the tab and `T::authorize` allows it. The
    /// listen is registered when this returns: a later `notify` reaches the tab. The tab must
    /// be held by this node; [`listen`](crate::listen) in a server function also reaches a tab
    /// another node holds.
    ///
    /// # Errors
    ///
    /// [`ListenError::BadKey`] if the key does not serialise, serialises to `null` or to more
    /// than 1,024 bytes; [`Unauthorized`](ListenError::Unauthorized) if `T::authorize` refuses;
    /// [`UnknownTab`](ListenError::UnknownTab) if this node does not hold the tab;
    /// [`ForeignTab`](ListenError::ForeignTab) if the tab is another identity's;
    /// [`TooManyListens`](ListenError::TooManyListens) at `Config::max_listens_per_tab`.
    pub async fn listen<T: Topic<Identity = I>>(
        &self,
        tab_id: TabId,
        identity: &I,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        self.listen_on::<T>(tab_id, None, identity, key).await
    }

    /// [`listen`](Self::listen) on the node the browser named as holding the tab, if another.
    pub(crate) async fn listen_on<T: Topic<Identity = I>>(
        &self,
        tab_id: TabId,
        node: Option<&str>,
        identity: &I,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        let key_id = KeyId::new::<T>(key)?;
        if !T::authorize(identity, key).await {
            return Err(ListenError::Unauthorized);
        }
        self.register::<T>();
        match self.holder(tab_id, node) {
            Some(node) => self.listen_at(node, tab_id, identity, &key_id).await,
            None => self.listen_key(tab_id, identity, key_id).await,
        }
    }

    /// Listens a tab held here on `key_id`, checked already.
    pub(crate) async fn listen_key(
        &self,
        tab_id: TabId,
        identity: &I,
        key_id: KeyId,
    ) -> Result<(), ListenError> {
        let cap = self.inner.config.max_listens_per_tab;
        let appearance = self.appearance(&key_id, identity).await;
        let mut ask_presence = false;
        let subscriptions = {
            let mut state = self.state();
            let new = state.listen(tab_id, identity, key_id.clone(), cap)?;
            if let Some(appearance) = appearance {
                if new {
                    ask_presence = state.joined(tab_id, &key_id, appearance);
                }
                // Every listen gets the list, so a page that listens again starts from it.
                state.send_present(tab_id, &key_id);
            }
            state.release()
        };
        // With several nodes, the listen counts once this node receives the key's channel.
        for subscribed in subscriptions {
            let _ = subscribed.await;
        }
        if ask_presence {
            self.ask_presence(&key_id);
        }
        Ok(())
    }

    /// Stops `tab_id` listening on `key`. Unlistening a key not listened to is not an error.
    /// The tab must be held by this node; [`unlisten`](crate::unlisten) in a server function
    /// also reaches a tab another node holds.
    ///
    /// # Errors
    ///
    /// [`ListenError::BadKey`] if the key does not serialise, serialises to `null` or to more
    /// than 1,024 bytes; [`UnknownTab`](ListenError::UnknownTab) if this node does not hold
    /// the tab; [`ForeignTab`](ListenError::ForeignTab) if the tab is another identity's.
    pub fn unlisten<T: Topic<Identity = I>>(
        &self,
        tab_id: TabId,
        identity: &I,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        let key_id = KeyId::new::<T>(key)?;
        self.state().unlisten(tab_id, identity, &key_id).map(|_| ())
    }

    /// [`unlisten`](Self::unlisten) on the node the browser named as holding the tab, if another.
    pub(crate) async fn unlisten_on<T: Topic<Identity = I>>(
        &self,
        tab_id: TabId,
        node: Option<&str>,
        identity: &I,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        let key_id = KeyId::new::<T>(key)?;
        match self.holder(tab_id, node) {
            Some(node) => self.unlisten_at(node, tab_id, identity, &key_id).await,
            None => self.state().unlisten(tab_id, identity, &key_id).map(|_| ()),
        }
    }

    /// Stops every tab of `identity` listening on `key` (Eliom's `unlisten_user`). Returns how
    /// many tabs were listening.
    ///
    /// # Errors
    ///
    /// [`ListenError::BadKey`] if the key does not serialise, serialises to `null` or to more
    /// than 1,024 bytes; nothing is unlistened then. An identity with no tab is not an error (0).
    pub fn unlisten_identity<T: Topic<Identity = I>>(
        &self,
        identity: &I,
        key: &T::Key,
    ) -> Result<usize, ListenError> {
        let key_id = KeyId::new::<T>(key)?;
        if let Some(cluster) = &self.inner.cluster {
            cluster.publish_unlisten_identity(T::NAME, identity, key_id.key_json());
        }
        Ok(self.unlisten_identity_local(identity, &key_id))
    }

    pub(super) fn unlisten_identity_local(&self, identity: &I, key_id: &KeyId) -> usize {
        let mut state = self.state();
        let tab_ids = state.tabs_of(identity);
        tab_ids
            .into_iter()
            .filter(|&c| state.unlisten(c, identity, key_id).unwrap_or(false))
            .count()
    }

    /// Listens the tab that sent `parts` on `key`: the request's identity, the tab its
    /// `x-notif-client` header names, on the node its `x-notif-node` header names if that is
    /// another. What [`listen`](crate::listen) does in a server function, for a plain axum
    /// handler. Returns once the listen is registered.
    ///
    /// # Errors
    ///
    /// A [`ListenError`], whose [`status`](ListenError::status) is the HTTP answer to give.
    pub async fn listen_caller<T: Topic<Identity = I>>(
        &self,
        parts: &Parts,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        let (tab_id, identity) = self.calling_tab(parts).await?;
        self.listen_on::<T>(tab_id, node_from(parts), &identity, key)
            .await
    }

    /// Stops the tab that sent `parts` listening on `key`, as
    /// [`listen_caller`](Self::listen_caller) finds it.
    ///
    /// # Errors
    ///
    /// A [`ListenError`], whose [`status`](ListenError::status) is the HTTP answer to give.
    pub async fn unlisten_caller<T: Topic<Identity = I>>(
        &self,
        parts: &Parts,
        key: &T::Key,
    ) -> Result<(), ListenError> {
        let (tab_id, identity) = self.calling_tab(parts).await?;
        self.unlisten_on::<T>(tab_id, node_from(parts), &identity, key)
            .await
    }

    /// The tab a request names and the request's identity.
    async fn calling_tab(&self, parts: &Parts) -> Result<(TabId, I), ListenError> {
        let tab_id = caller_from(parts)?;
        Ok((tab_id, self.identify(parts).await))
    }
}
